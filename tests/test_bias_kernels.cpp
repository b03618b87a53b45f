// Every bias scheme through both attention kernels (outputs and gradients, including the schemes'
// own parameters), in the model (causality), the shipped configs, and ALiBi at long positions.
#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"
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
using test::config_path;
using test::contains;
using test::explicit_positions;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
// ---- Both attention kernels with every bias scheme ----------------------------------------------

struct LabelledScheme {
  std::string label;
  std::shared_ptr<PositionScheme> scheme;
};

// The schemes of this file with non-trivial parameters, for 3 heads of dimension 8.
std::vector<LabelledScheme> bias_schemes() {
  torch::manual_seed(77);
  const ModelShape shape{24, 3, 2, 32};
  return {{"t5", build("t5", {{"num_buckets", 8}, {"max_distance", 20}, {"init_std", 0.5}}, shape)},
          {"kerple log", build("kerple", {{"variant", "log"}}, shape)},
          {"kerple power", build("kerple", {{"variant", "power"}}, shape)},
          {"sandwich", build("sandwich", nlohmann::json::object(), shape)},
          {"fire beyond threshold", build("fire", {{"init_L", 30.0}}, shape)},  // rows >= 30: psi(i)
          {"fire below threshold", build("fire", nlohmann::json::object(), shape)},  // L = 512
          {"dpb", build("dpb", nlohmann::json::object(), shape)}};
}

torch::Tensor attend(AttentionKernel kernel, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     PositionScheme& scheme, const Positions& positions, const KeyMask& mask, int64_t block) {
  const AttentionCall call{scheme, positions, mask, block, 0.5};
  QueryKey qk;
  qk.q = q;
  qk.k = k;
  if (kernel == AttentionKernel::kFusedCpu) return fused_causal_attention(qk, v, call);
  if (kernel == AttentionKernel::kTiled) return tiled_causal_attention(qk, v, call);
  return blockwise_causal_attention(qk, v, call, 0.0, false);
}

// 45 sorted distinct integer positions from [0, 200): random-position training's kind of window.
Positions random_positions(int64_t length) {
  torch::manual_seed(78);
  return Positions{std::get<0>(torch::randperm(200, torch::kInt64).slice(0, 0, length).sort()).to(torch::kFloat64),
                   false};
}

constexpr AttentionKernel kKernels[] = {AttentionKernel::kFusedCpu, AttentionKernel::kTiled, AttentionKernel::kBlockwise};
constexpr AttentionKernel kMemoryLinearKernels[] = {AttentionKernel::kFusedCpu, AttentionKernel::kTiled};

TEST(BiasSchemeKernels, EveryKernelMatchesFullAttentionWithAndWithoutAWindow) {
  torch::NoGradGuard no_grad;
  const int64_t length = 45;
  torch::manual_seed(79);
  const auto q = torch::randn({2, 3, length, 8}), k = torch::randn({2, 3, length, 8}), v = torch::randn({2, 3, length, 8});
  for (const auto& [label, scheme] : bias_schemes()) {
    for (const auto& positions : {Positions::arange(length, kCpu), random_positions(length)}) {
      const auto bias = scheme->score_bias(positions, 0, length, 0, length);
      ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{3, length, length})) << label;
      for (const KeyMask mask : {KeyMask{}, KeyMask{16, 4}}) {
        SCOPED_TRACE(label + (positions.is_arange ? " arange" : " random positions") +
                     (mask.window ? " window 16 + 4 sinks" : " full"));
        const auto expected = naive_attention(QueryKey{q, k}, v, 0.5, bias, mask);
        EXPECT_GT(max_abs_diff(expected, naive_attention(QueryKey{q, k}, v, 0.5, {}, mask)), 1e-3) << "the bias changes nothing";
        for (int64_t block : {1, 7, 16, 1000}) {
          for (const auto kernel : kKernels) {
            EXPECT_LT(max_abs_diff(attend(kernel, q, k, v, *scheme, positions, mask, block), expected), 1e-5)
                << "kernel " << int(kernel) << " block " << block;
          }
        }
      }
    }
  }
}

struct Gradients {
  torch::Tensor out;
  std::vector<torch::Tensor> grads;  // q, k, v, then the scheme's parameters
};

Gradients attention_gradients(AttentionKernel kernel, const torch::Tensor& q0, const torch::Tensor& k0, const torch::Tensor& v0,
                              PositionScheme& scheme, const Positions& positions, const KeyMask& mask,
                              const torch::Tensor& weights) {
  auto q = q0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true),
       v = v0.clone().set_requires_grad(true);
  for (auto& p : scheme.parameters()) p.mutable_grad() = torch::Tensor();
  auto out = attend(kernel, q, k, v, scheme, positions, mask, 7);
  (out * weights).sum().backward();
  Gradients result{out.detach(), {q.grad(), k.grad(), v.grad()}};
  for (auto& p : scheme.parameters()) {
    result.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
  return result;
}

// The memory-linear kernels recompute each block's bias in backward: their gradients, the schemes'
// parameters' included, match the reference that keeps every block's graph.
TEST(BiasSchemeKernels, MemoryLinearGradientsMatchBlockwiseForInputsAndSchemeParameters) {
  const int64_t length = 40;
  torch::manual_seed(80);
  const auto q = torch::randn({2, 3, length, 8}), k = torch::randn({2, 3, length, 8}), v = torch::randn({2, 3, length, 8});
  const auto weights = torch::randn({2, length, 3, 8});
  for (const auto& [label, scheme] : bias_schemes()) {
    for (const auto& positions : {Positions::arange(length, kCpu), random_positions(length)}) {
      for (const KeyMask mask : {KeyMask{}, KeyMask{16, 4}}) {
        SCOPED_TRACE(label + (positions.is_arange ? " arange" : " random positions") +
                     (mask.window ? " window 16 + 4 sinks" : " full"));
        const auto plain = attention_gradients(AttentionKernel::kBlockwise, q, k, v, *scheme, positions, mask, weights);
        for (const auto kernel : kMemoryLinearKernels) {
          SCOPED_TRACE(int(kernel));
          const auto got = attention_gradients(kernel, q, k, v, *scheme, positions, mask, weights);
          EXPECT_LT(max_abs_diff(got.out, plain.out), 1e-5);
          ASSERT_EQ(got.grads.size(), plain.grads.size());
          for (std::size_t g = 0; g < got.grads.size(); ++g) {
            const double scale = 1.0 + plain.grads[g].abs().max().item<double>();
            EXPECT_LT(max_abs_diff(got.grads[g], plain.grads[g]), 2e-5 * scale) << "gradient " << g;
            // Every learnable parameter receives a gradient (index >= 3 are the scheme's).
            EXPECT_GT(got.grads[g].abs().max().item<double>(), 0.0) << "gradient " << g << " is zero";
          }
          EXPECT_EQ(got.grads.size(), 3 + scheme->parameters().size());
        }
      }
    }
  }
}

// ---- In the model -------------------------------------------------------------------------------

RunConfig tiny_run(const KeyMask& mask) {
  RunConfig run;
  run.model.vocab_size = 64;
  run.model.d_model = 32;
  run.model.n_layers = 2;
  run.model.n_heads = 2;
  run.model.d_mlp = 64;
  run.data.train_length = 48;
  LayerConfig layer;
  layer.attention.window = mask.window;
  layer.attention.sinks = mask.sinks;
  run.layers.assign(run.model.n_layers, layer);
  return run;
}

TEST(BiasSchemeModel, CausalWithGradientsWithAWindowAndOneSharedInstance) {
  const int64_t length = 40, changed = 25;
  for (const char* name : {"t5", "kerple", "sandwich", "fire", "dpb"}) {
    for (const KeyMask mask : {KeyMask{}, KeyMask{8, 2}}) {
      SCOPED_TRACE(std::string(name) + (mask.window ? " window" : ""));
      const auto run = tiny_run(mask);
      torch::manual_seed(81);
      auto scheme = build(name, nlohmann::json::object(), {32, 2, 2, 48});
      GPT model(run, scheme, std::vector<std::shared_ptr<PositionScheme>>(2, scheme));
      model->train();  // dropout 0: the fused kernel with autograd
      model->set_attention_block(8);
      // The scheme's parameters are the model's once, under position.
      const auto model_params = model->named_parameters();
      for (const auto& item : scheme->named_parameters()) {
        EXPECT_TRUE(model_params.contains("position." + item.key())) << item.key();
      }
      const auto tokens = torch::randint(64, {2, length}, torch::kInt64);
      auto edited = tokens.clone();
      edited.select(1, changed).add_(1).remainder_(64);
      const auto positions = Positions::arange(length, kCpu);
      const auto logits = model->forward(tokens, positions);
      const auto edited_logits = model->forward(edited, positions);
      EXPECT_LE(max_abs_diff(logits.slice(1, 0, changed), edited_logits.slice(1, 0, changed)), 1e-6);
      EXPECT_GT(max_abs_diff(logits.slice(1, changed, length), edited_logits.slice(1, changed, length)), 1e-4);
      // Backward through both layers reaches the shared scheme's parameters.
      logits.sum().backward();
      for (const auto& item : scheme->named_parameters()) {
        ASSERT_TRUE(item.value().grad().defined()) << item.key();
        EXPECT_TRUE(torch::isfinite(item.value().grad()).all().item<bool>()) << item.key();
      }
    }
  }
}

// ---- Configs ------------------------------------------------------------------------------------

TEST(BiasSchemeConfigs, ShippedConfigsResolve) {
  const std::vector<std::pair<std::string, std::string>> configs{{"t5.json", "t5"},
                                                                 {"kerple.json", "kerple"},
                                                                 {"kerple_power.json", "kerple"},
                                                                 {"sandwich.json", "sandwich"},
                                                                 {"fire.json", "fire"},
                                                                 {"dpb.json", "dpb"}};
  for (const auto& [file, scheme] : configs) {
    const auto config = load_config(config_path(file));
    EXPECT_EQ(config.position.scheme, scheme) << file;
    const ModelShape shape{config.model.d_model, config.model.n_heads, config.model.n_layers, config.data.train_length};
    EXPECT_NO_THROW(make_scheme(scheme, config.position.params, shape)) << file;
  }
  EXPECT_EQ(load_config(config_path("kerple_power.json")).position.params.at("variant"), "power");
  EXPECT_EQ(load_config(config_path("kerple.json")).position.params.at("variant"), "log");
}

// ---- ALiBi at long positions ----------------------------------------------------------------------

TEST(AlibiLongPositions, BiasIsMinusSlopeTimesDistanceNearAHundredThousandAndTwoToTheTwenty) {
  // 12 heads: 2^-1 .. 2^-8, then every other slope of 16 heads, 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5. The
  // last four round in float32, so the tolerance is relative to the bias (float32's 1e-7, with margin).
  std::vector<double> slopes;
  for (int h = 1; h <= 8; ++h) slopes.push_back(std::pow(2.0, -h));
  for (double e : {0.5, 1.5, 2.5, 3.5}) slopes.push_back(std::pow(2.0, -e));
  const auto alibi = build("alibi", nlohmann::json::object(), {36, 12, 1, 128});
  const auto slope = torch::tensor(slopes, torch::kFloat64).view({12, 1, 1});
  // score_bias returns one row per block: -slope (i - j) less the row constant -slope (i - i0).
  const auto expect_bias = [&](const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                               int64_t k_end) {
    const auto bias = alibi->score_bias(positions, q_begin, q_end, k_begin, k_end).to(torch::kFloat64);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{12, 1, k_end - k_begin}));
    const auto& p = positions.values;
    const auto i = p.slice(0, q_begin, q_end).view({1, -1, 1}), j = p.slice(0, k_begin, k_end).view({1, 1, -1});
    const auto expected = -slope * (i - j);  // [12, rows, keys], float64
    const auto row_constant = -slope * (i - p[q_begin]);
    const auto got = bias + row_constant;
    // score_bias holds slope (j - i0) in float32, so its rounding (about 0.004 at j - i0 = 1e5) stays
    // in a query row far from i0 after the row constant cancels: the tolerance counts both terms.
    const auto excess = (got - expected).abs() - (1e-6 * (expected.abs() + row_constant.abs()) + 1e-6);
    EXPECT_LE(excess.max().item<double>(), 0.0) << "queries " << q_begin << ".." << q_end;
    EXPECT_GT(expected.abs().max().item<double>(), 1e4);  // the distances are long
  };
  // The cached-arange kind of window: queries 100,000 .. 100,004 against every key.
  expect_bias(Positions::arange(100005, kCpu), 100000, 100005, 0, 100005);
  // Explicit positions up to 2^20 + 100,000 (integers, exact in float32).
  const double far = double(1 << 20);
  const auto positions = explicit_positions({0, 1, 65536, 100000, far - 1, far, far + 1, far + 100000});
  expect_bias(positions, 4, 8, 0, 8);
  expect_bias(positions, 7, 8, 3, 8);
}

}  // namespace
}  // namespace extrap
