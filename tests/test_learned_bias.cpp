// The learned-MLP bias schemes fire and dpb: hand computations with fixed weights, gradients of
// every parameter, and the piecewise-linear evaluation path.
#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/gpt.h"
#include "position/dpb.h"
#include "position/fire.h"
#include "position/kerple.h"
#include "position/relative_bias.h"
#include "position/sandwich.h"
#include "position/t5_bias.h"
#include "train/adamw.h"

namespace extrap {
namespace {

using test::build;
using test::contains;
using test::kCpu;
using test::max_abs_diff;
using test::user_error_message;
using test::causal_weights;
using test::explicit_arange;
using test::set_values;
// ---- FIRE ---------------------------------------------------------------------------------------

// FIRE with 2 heads, MLP width 2 and fixed weights: f(x) = W2 relu(W1 x + b1) + b2,
// W1 = [1, -2]^T, b1 = [0, 1], W2 = [[1, 0.5], [-1, 2]], b2 = [0.1, -0.2]; c = 0.5, L = 4.
std::shared_ptr<Fire> fixed_fire(double init_L = 4.0) {
  auto fire = std::make_shared<Fire>(2, 2, 0.5, init_L);
  set_values(fire->mlp_in->weight, torch::tensor({1.0, -2.0}));
  set_values(fire->mlp_in->bias, torch::tensor({0.0, 1.0}));
  set_values(fire->mlp_out->weight, torch::tensor({1.0, 0.5, -1.0, 2.0}));
  set_values(fire->mlp_out->bias, torch::tensor({0.1, -0.2}));
  return fire;
}

TEST(FireScheme, MatchesHandComputationWithFixedWeights) {
  auto fire = fixed_fire();
  // Hand values: psi(x) = ln(1 + x/2); x = psi(i - j) / (psi(max(4, i)) + 1e-6).
  //   (2, 0): x = ln 2 / ln 3 = 0.63093, hidden (0.63093, 0)       -> (0.73093, -0.83093)
  //   (6, 5): x = ln 1.5 / ln 4 = 0.29248, hidden (0.29248, 0.41504) -> (0.6, 0.33759)
  //   (7, 0): x = ln 4.5 / ln 4.5 = 1 (less 1e-6), hidden (1, 0)    -> (1.1, -1.2)
  //   (3, 3): x = 0, hidden (0, 1)                                  -> (0.6, 1.8)
  //   (5, 1): x = ln 3 / ln 3.5 = 0.87695, hidden (0.87695, 0)     -> (0.97695, -1.07695)
  const std::vector<std::tuple<int, int, double, double>> expected{{2, 0, 0.7309291793, -0.8309291793},
                                                                   {6, 5, 0.6, 0.3375948031},
                                                                   {7, 0, 1.0999993351, -1.1999993351},
                                                                   {3, 3, 0.6, 1.8},
                                                                   {5, 1, 0.9769507396, -1.0769507396}};
  for (const auto& positions : {Positions::arange(8, kCpu), explicit_arange(8)}) {
    const auto bias = fire->score_bias(positions, 0, 8, 0, 8);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 8, 8}));
    for (const auto& [i, j, h0, h1] : expected) {
      EXPECT_NEAR(bias[0][i][j].item<double>(), h0, 1e-5) << i << " " << j;
      EXPECT_NEAR(bias[1][i][j].item<double>(), h1, 1e-5) << i << " " << j;
    }
  }
  // The reference code's parameters and initial values.
  EXPECT_NEAR(fire->c.item<double>(), 0.5, 1e-7);
  EXPECT_EQ(fire->L_multiplier.item<double>(), 1.0);
  EXPECT_EQ(fire->threshold().item<double>(), 4.0);
  const auto defaults = resolve_scheme_params(find_scheme("fire"), nlohmann::json::object());
  EXPECT_EQ(defaults, (nlohmann::json{{"mlp_width", 32}, {"init_c", 0.1}, {"init_L", 512.0}}));
  const auto built = build("fire", nlohmann::json::object(), {32, 4, 1, 64});
  auto params = built->named_parameters();
  EXPECT_EQ(params["mlp_in.weight"].sizes(), (std::vector<int64_t>{32, 1}));
  EXPECT_EQ(params["mlp_out.weight"].sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_NEAR(params["c"].item<double>(), 0.1, 1e-7);
  EXPECT_EQ(built->named_buffers()["init_L"].item<double>(), 512.0);
  EXPECT_TRUE(contains(user_error_message([] { build("fire", {{"init_c", 0.0}}, {32, 4, 1, 64}); }), "position.init_c"));
  EXPECT_TRUE(contains(user_error_message([] { build("fire", {{"mlp_width", 0}}, {32, 4, 1, 64}); }),
                       "position.mlp_width"));
  EXPECT_TRUE(contains(user_error_message([] { build("fire", {{"init_L", -1.0}}, {32, 4, 1, 64}); }), "position.init_L"));
}

// Gradients of every FIRE parameter for loss = sum(weights * bias) of one block.
std::vector<torch::Tensor> fire_gradients(Fire& fire, const Positions& positions, const BlockRange& b,
                                          const torch::Tensor& weights) {
  for (auto& p : fire.parameters()) p.mutable_grad() = torch::Tensor();
  (fire.score_bias(positions, b.q_begin, b.q_end, b.k_begin, b.k_end) * weights).sum().backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : fire.parameters()) grads.push_back(p.grad().clone());
  return grads;
}

TEST(FireScheme, ShortcutForRowsBelowTheThresholdMatchesTheGeneralPath) {
  // With L = 64 > every row of a 40-token window, arange positions take the distance-only path.
  torch::manual_seed(9);
  Fire fire(3, 8, 0.1, 64.0);
  const BlockRange b{10, 40, 5, 40};
  const auto weights = torch::randn({3, b.rows(), b.keys()}) * causal_weights(b);
  const auto shortcut = fire.score_bias(Positions::arange(40, kCpu), 10, 40, 5, 40);
  const auto general = fire.score_bias(explicit_arange(40), 10, 40, 5, 40);
  EXPECT_LT(max_abs_diff(shortcut, general), 1e-6);
  const auto g1 = fire_gradients(fire, Positions::arange(40, kCpu), b, weights);
  const auto g2 = fire_gradients(fire, explicit_arange(40), b, weights);
  ASSERT_EQ(g1.size(), 6u);  // mlp_in (weight, bias), mlp_out (weight, bias), c, L_multiplier
  for (std::size_t k = 0; k < g1.size(); ++k) {
    EXPECT_LT(max_abs_diff(g1[k], g2[k]), 1e-4 * (1 + g2[k].abs().max().item<double>())) << k;
    EXPECT_GT(g1[k].abs().max().item<double>(), 0.0) << "parameter " << k << " gets no gradient";
  }
}

TEST(FireScheme, EveryParameterGetsAGradientBeyondTheThreshold) {
  auto fire = fixed_fire();  // L = 4: rows 0..3 are normalised by psi(L), rows 4..7 by psi(i)
  const BlockRange b{0, 8, 0, 8};
  const auto grads = fire_gradients(*fire, Positions::arange(8, kCpu), b, causal_weights(b).unsqueeze(0));
  for (std::size_t k = 0; k < grads.size(); ++k) EXPECT_GT(grads[k].abs().max().item<double>(), 0.0) << k;
}

TEST(FireScheme, PiecewiseLinearEvaluationEqualsTheMlp) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  Fire fire(4, 32, 0.1, 512.0);
  // Inputs across [0, 1] and beyond, plus every hidden unit's switching point exactly.
  auto x = torch::cat({torch::linspace(-0.5, 1.5, 20001), -fire.mlp_in->bias / fire.mlp_in->weight.reshape({-1})});
  const auto piecewise = fire.mlp_piecewise(x), direct = fire.mlp(x);
  ASSERT_EQ(piecewise.sizes(), direct.sizes());
  EXPECT_LT(max_abs_diff(piecewise, direct), 2e-6 * (1 + direct.abs().max().item<double>()));
  // A unit that never switches (zero input weight) and a hand-made function with known segments.
  auto fixed = fixed_fire();
  const auto points = torch::tensor({-1.0f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f});
  EXPECT_LT(max_abs_diff(fixed->mlp_piecewise(points), fixed->mlp(points)), 1e-6);
  set_values(fixed->mlp_in->weight, torch::tensor({0.0, -2.0}));
  EXPECT_LT(max_abs_diff(fixed->mlp_piecewise(points), fixed->mlp(points)), 1e-6);
  set_values(fixed->mlp_in->weight, torch::tensor({0.0, 0.0}));  // no switching point at all: f is constant
  EXPECT_LT(max_abs_diff(fixed->mlp_piecewise(points), fixed->mlp(points)), 1e-6);
}

TEST(FireScheme, LongBlocksGiveTheSameBiasInChunksWithAndWithoutGradients) {
  // 100 rows x 9000 keys exceed one chunk both for the MLP's hidden layer (width 32) and for the
  // per-head lookups of the piecewise evaluation (4 heads).
  torch::manual_seed(10);
  Fire fire(4, 32, 0.1, 512.0);
  const auto positions = Positions::arange(9000, kCpu);
  const auto with_graph = fire.score_bias(positions, 8900, 9000, 0, 9000);
  ASSERT_TRUE(with_graph.requires_grad());
  torch::NoGradGuard no_grad;
  const auto evaluated = fire.score_bias(positions, 8900, 9000, 0, 9000);
  ASSERT_EQ(evaluated.sizes(), (std::vector<int64_t>{4, 100, 9000}));
  const double scale = 1 + with_graph.abs().max().item<double>();
  EXPECT_LT(max_abs_diff(evaluated * causal_weights({8900, 9000, 0, 9000}), with_graph * causal_weights({8900, 9000, 0, 9000})),
            2e-6 * scale);
  for (int64_t r = 0; r < 100; r += 9) {
    const auto row = fire.score_bias(positions, 8900 + r, 8901 + r, 0, 9000);  // one row: no chunking
    EXPECT_LT(max_abs_diff(evaluated.slice(1, r, r + 1), row), 1e-6) << r;
  }
}

// ---- Dynamic position bias ----------------------------------------------------------------------

TEST(DpbScheme, MatchesHandComputationWithFixedWeights) {
  // Depth 1, width 2, 2 heads: f(x) = W2 silu(W1 x + b1) + b2 with x = ln(1 + d),
  // W1 = [0.5, -1]^T, b1 = [0.1, 0.2], W2 = [[1, -0.5], [0.3, 2]], b2 = [0, -0.1].
  for (const bool log_distance : {true, false}) {
    DynamicPositionBias dpb(2, 2, 1, log_distance);
    ASSERT_EQ(dpb.mlp->size(), 2u);
    auto first = dpb.mlp->ptr<torch::nn::LinearImpl>(0), last = dpb.mlp->ptr<torch::nn::LinearImpl>(1);
    set_values(first->weight, torch::tensor({0.5, -1.0}));
    set_values(first->bias, torch::tensor({0.1, 0.2}));
    set_values(last->weight, torch::tensor({1.0, -0.5, 0.3, 2.0}));
    set_values(last->bias, torch::tensor({0.0, -0.1}));
    for (const auto& positions : {Positions::arange(12, kCpu), explicit_arange(12)}) {
      const auto bias = dpb.score_bias(positions, 0, 12, 0, 12);
      ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 12, 12}));
      if (log_distance) {
        // d = 0, 1, 3, 10 (silu(z) = z / (1 + e^-z)).
        const std::vector<std::tuple<int, int, double, double>> expected{{5, 5, -0.0024854810, 0.1356829745},
                                                                         {1, 0, 0.3658203936, -0.3922565029},
                                                                         {7, 4, 0.6848375184, -0.4911753665},
                                                                         {11, 1, 1.1303568127, -0.2331552744}};
        for (const auto& [i, j, h0, h1] : expected) {
          EXPECT_NEAR(bias[0][i][j].item<double>(), h0, 1e-6) << i << " " << j;
          EXPECT_NEAR(bias[1][i][j].item<double>(), h1, 1e-6) << i << " " << j;
        }
      } else {
        EXPECT_NEAR(bias[0][7][4].item<double>(), 1.4114832625, 1e-6);  // x = d = 3
        EXPECT_NEAR(bias[1][7][4].item<double>(), -0.0216465602, 1e-6);
      }
    }
  }
}

TEST(DpbScheme, DistinctDistancePathMatchesTheToeplitzPath) {
  torch::manual_seed(12);
  auto dpb = build("dpb", nlohmann::json::object(), {32, 4, 2, 64});
  auto params = dpb->named_parameters();
  EXPECT_EQ(params["mlp.0.weight"].sizes(), (std::vector<int64_t>{8, 1}));  // width d_model / 4
  EXPECT_EQ(params["mlp.1.weight"].sizes(), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(params["mlp.2.weight"].sizes(), (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(params.size(), 6u);
  const BlockRange b{20, 50, 3, 50};
  const auto weights = torch::randn({4, b.rows(), b.keys()}) * causal_weights(b);
  std::vector<std::vector<torch::Tensor>> grads;
  std::vector<torch::Tensor> biases;
  for (const auto& positions : {Positions::arange(50, kCpu), explicit_arange(50)}) {
    for (auto& p : dpb->parameters()) p.mutable_grad() = torch::Tensor();
    biases.push_back(dpb->score_bias(positions, b.q_begin, b.q_end, b.k_begin, b.k_end));
    (biases.back() * weights).sum().backward();
    grads.emplace_back();
    for (auto& p : dpb->parameters()) grads.back().push_back(p.grad().clone());
  }
  EXPECT_LT(max_abs_diff(biases[0] * causal_weights(b), biases[1] * causal_weights(b)), 1e-6);
  for (std::size_t k = 0; k < grads[0].size(); ++k) {
    EXPECT_LT(max_abs_diff(grads[0][k], grads[1][k]), 1e-4 * (1 + grads[1][k].abs().max().item<double>())) << k;
    EXPECT_GT(grads[0][k].abs().max().item<double>(), 0.0) << k;
  }
  EXPECT_TRUE(contains(user_error_message([] { build("dpb", {{"depth", 0}}, {32, 4, 2, 64}); }), "position.depth"));
  EXPECT_TRUE(contains(user_error_message([] { build("dpb", {{"width", -2}}, {32, 4, 2, 64}); }), "position.width"));
}

}  // namespace
}  // namespace extrap
