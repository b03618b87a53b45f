// The relative-position bias schemes t5, kerple and sandwich: golden values computed by hand and
// constraints under training. FIRE and DPB: test_learned_bias.cpp; both kernels, the model and
// ALiBi at long positions: test_bias_kernels.cpp.
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
using test::explicit_positions;
using test::kCpu;
using test::max_abs_diff;
using test::user_error_message;
using test::causal_weights;
using test::explicit_arange;
using test::set_values;
// ---- Toeplitz helper ----------------------------------------------------------------------------

TEST(RelativeBiasHelpers, ToeplitzExpandPlacesEachDistance) {
  // Block rows [5, 8) against keys [2, 6): distances run from 5 - 5 = 0 to 7 - 2 = 5.
  const BlockRange block{5, 8, 2, 6};
  ASSERT_EQ(block.min_distance(), 0);
  ASSERT_EQ(block.max_distance(), 5);
  const auto distances = toeplitz_distances(block, torch::TensorOptions());
  ASSERT_EQ(distances.numel(), 6);
  const auto values = torch::stack({distances * 10, distances * -1});  // [2, n]
  const auto out = toeplitz_expand(values, block.rows(), block.keys());
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 4}));
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 4; ++c) {
      const double d = double((5 + r) - (2 + c));
      EXPECT_EQ(out[0][r][c].item<double>(), 10 * d) << r << " " << c;
      EXPECT_EQ(out[1][r][c].item<double>(), -d) << r << " " << c;
    }
  }
  // Far blocks (a sink segment): rows [40, 42) against keys [0, 3) have distances 38..41.
  const BlockRange far{40, 42, 0, 3};
  const auto far_out = toeplitz_expand(toeplitz_distances(far, torch::TensorOptions()), 2, 3);
  EXPECT_EQ(far_out[0][0].item<double>(), 40.0);
  EXPECT_EQ(far_out[1][2].item<double>(), 39.0);
  EXPECT_EQ(far_out[1][0].item<double>(), 41.0);
}

// ---- T5 -----------------------------------------------------------------------------------------

TEST(T5Scheme, DefaultBucketBoundariesMatchHandValues) {
  // 32 buckets, max_distance 128: 0..15 exact; then 16 + floor(log(n/16) / log(8) * 16), at most 31.
  for (int64_t d = 0; d < 16; ++d) EXPECT_EQ(t5_causal_bucket(d, 32, 128), d) << d;
  const std::vector<std::pair<int64_t, int64_t>> expected{
      {16, 16}, {17, 16}, {18, 16}, {19, 17}, {20, 17}, {21, 18}, {31, 21}, {32, 21}, {63, 26},  {64, 26},
      {98, 29}, {99, 30}, {112, 30}, {113, 31}, {127, 31}, {128, 31}, {129, 31}, {1000, 31}, {100000, 31}};
  for (const auto& [d, bucket] : expected) EXPECT_EQ(t5_causal_bucket(d, 32, 128), bucket) << d;
  // Causal: future keys (negative distances) share bucket 0 with distance 0.
  EXPECT_EQ(t5_causal_bucket(-1, 32, 128), 0);
  EXPECT_EQ(t5_causal_bucket(-500, 32, 128), 0);
}

TEST(T5Scheme, SmallConfigurationBuckets) {
  // 8 buckets, max_distance 20: 0..3 exact; 4 + floor(log(n/4) / log(5) * 4), at most 7.
  const int64_t expected[] = {0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7};
  for (int64_t d = 0; d < int64_t(std::size(expected)); ++d) EXPECT_EQ(t5_causal_bucket(d, 8, 20), expected[d]) << d;
}

// Bucket of each distance 0..22 for 8 buckets and max_distance 20 (hand values, as above).
int64_t small_bucket(int64_t d) {
  const int64_t expected[] = {0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 7};
  return d < 0 ? 0 : expected[std::min<int64_t>(d, 14)];
}

TEST(T5Scheme, BiasIsTheTableEntryOfTheBucket) {
  T5Bias t5(2, 8, 20, 0.0);
  EXPECT_EQ(t5.table().abs().max().item<double>(), 0.0) << "init_std 0 starts at zeros";
  set_values(t5.table(), torch::tensor({0., 1., 2., 3., 4., 5., 6., 7., 100., 101., 102., 103., 104., 105., 106., 107.}));
  const auto positions = Positions::arange(30, kCpu);
  for (const BlockRange& b : {BlockRange{0, 7, 0, 7}, BlockRange{20, 30, 0, 30}, BlockRange{25, 30, 3, 9}}) {
    const auto bias = t5.score_bias(positions, b.q_begin, b.q_end, b.k_begin, b.k_end);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, b.rows(), b.keys()}));
    for (int64_t i = b.q_begin; i < b.q_end; ++i) {
      for (int64_t j = b.k_begin; j < std::min(b.k_end, i + 1); ++j) {
        for (int h = 0; h < 2; ++h) {
          EXPECT_EQ(bias[h][i - b.q_begin][j - b.k_begin].item<float>(), 100.0 * h + small_bucket(i - j))
              << h << " " << i << " " << j;
        }
      }
    }
    // Explicit positions take the general path and give the same bias.
    EXPECT_EQ(max_abs_diff(bias, t5.score_bias(explicit_arange(30), b.q_begin, b.q_end, b.k_begin, b.k_end)), 0.0);
  }
  // Written out: distance 29 is beyond max_distance (last bucket), distance 6 is bucket 5.
  const auto bias = t5.score_bias(positions, 20, 30, 0, 30);
  EXPECT_EQ(bias[0][9][0].item<float>(), 7.0f);
  EXPECT_EQ(bias[1][9][0].item<float>(), 107.0f);
  EXPECT_EQ(bias[1][5][19].item<float>(), 105.0f);
  // Float positions are truncated like a table index: trunc(9.7) - trunc(2.2) = 7 -> bucket 5.
  const auto floats = t5.score_bias(explicit_positions({0.0, 2.2, 5.5, 9.7}), 3, 4, 0, 4);
  EXPECT_EQ(floats[1][0][1].item<float>(), 105.0f);
  EXPECT_EQ(floats[1][0][2].item<float>(), 104.0f);  // trunc(9.7) - trunc(5.5) = 4 -> bucket 4
}

TEST(T5Scheme, GradientCountsTheEntriesOfEachBucket) {
  T5Bias t5(2, 8, 20, 0.5);
  const BlockRange b{0, 10, 0, 10};
  const auto bias = t5.score_bias(Positions::arange(10, kCpu), 0, 10, 0, 10);
  (bias * causal_weights(b)).sum().backward();
  // Distance d occurs 10 - d times in a 10x10 causal block; buckets: 0,1,2,3 exact, {4,5} -> 4, {6,7,8} -> 5, 9 -> 6.
  const double counts[] = {10, 9, 8, 7, 6 + 5, 4 + 3 + 2, 1, 0};
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 8; ++k) EXPECT_EQ(t5.table().grad()[h][k].item<float>(), counts[k]) << h << " " << k;
  }
}

TEST(T5Scheme, RegistryDefaultsInitAndValidation) {
  EXPECT_EQ(resolve_scheme_params(find_scheme("t5"), nlohmann::json::object()),
            (nlohmann::json{{"num_buckets", 32}, {"max_distance", 128}, {"init_std", 0.0}}));
  EXPECT_TRUE(find_scheme("t5").integer_positions);
  EXPECT_TRUE(find_scheme("t5").hooks & kBiasHook);
  torch::manual_seed(3);
  auto scheme = build("t5", {{"init_std", 0.25}}, {64, 4, 2, 128});
  const auto table = scheme->named_parameters()["table"];
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_NEAR(table.std().item<double>(), 0.25, 0.06);
  EXPECT_TRUE(contains(user_error_message([] { build("t5", {{"num_buckets", 1}}, {64, 4, 2, 128}); }),
                       "position.num_buckets"));
  EXPECT_TRUE(contains(user_error_message([] { build("t5", {{"max_distance", 16}}, {64, 4, 2, 128}); }),
                       "position.max_distance"));
  EXPECT_NO_THROW(build("t5", {{"max_distance", 17}}, {64, 4, 2, 128}));
  EXPECT_TRUE(contains(user_error_message([] { build("t5", {{"init_std", -1.0}}, {64, 4, 2, 128}); }),
                       "position.init_std"));
}

// ---- KERPLE -------------------------------------------------------------------------------------

TEST(KerpleScheme, LogBiasMatchesHandValues) {
  Kerple kerple(2, Kerple::Variant::kLog);
  set_values(kerple.r1(), torch::tensor({1.0, 0.5}));
  set_values(kerple.r2(), torch::tensor({2.0, 0.25}));
  // -r1 log(1 + r2 d): head 0 = -log(1 + 2d), head 1 = -0.5 log(1 + d/4), for d = 1, 2, 3.
  const double head0[] = {0.0, -1.0986122887, -1.6094379124, -1.9459101491};
  const double head1[] = {0.0, -0.1115717757, -0.2027325541, -0.2798078940};
  const auto bias = kerple.score_bias(Positions::arange(4, kCpu), 0, 4, 0, 4);
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 4, 4}));
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      EXPECT_NEAR(bias[0][i][j].item<double>(), head0[i - j], 1e-6) << i << " " << j;
      EXPECT_NEAR(bias[1][i][j].item<double>(), head1[i - j], 1e-6) << i << " " << j;
    }
  }
  // A block of later rows against a later key range, and the general path, agree with it.
  const auto part = kerple.score_bias(Positions::arange(4, kCpu), 2, 4, 1, 4);
  EXPECT_LT(max_abs_diff(part, bias.slice(1, 2, 4).slice(2, 1, 4)), 1e-7);
  EXPECT_LT(max_abs_diff(kerple.score_bias(explicit_arange(4), 0, 4, 0, 4), bias), 1e-7);
  // Float positions: d = 2.25 - 0.5 = 1.75 -> -log(1 + 3.5) = -1.5040774.
  const auto floats = kerple.score_bias(explicit_positions({0.0, 0.5, 2.25}), 2, 3, 0, 3);
  EXPECT_NEAR(floats[0][0][1].item<double>(), -1.5040773968, 1e-6);
}

TEST(KerpleScheme, PowerBiasMatchesHandValues) {
  Kerple kerple(2, Kerple::Variant::kPower);
  set_values(kerple.r1(), torch::tensor({0.5, 2.0}));
  set_values(kerple.r2(), torch::tensor({1.5, 0.5}));
  // -r1 d^r2: head 0 = -0.5 d^1.5, head 1 = -2 sqrt(d), for d = 0..3.
  const double head0[] = {0.0, -0.5, -1.4142135624, -2.5980762114};
  const double head1[] = {0.0, -2.0, -2.8284271247, -3.4641016151};
  const auto bias = kerple.score_bias(Positions::arange(4, kCpu), 0, 4, 0, 4);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      EXPECT_NEAR(bias[0][i][j].item<double>(), head0[i - j], 1e-6) << i << " " << j;
      EXPECT_NEAR(bias[1][i][j].item<double>(), head1[i - j], 1e-6) << i << " " << j;
    }
  }
  EXPECT_LT(max_abs_diff(kerple.score_bias(explicit_arange(4), 0, 4, 0, 4), bias), 1e-7);
  // d^r2 at d = 0 must not poison the exponent's gradient (d/dr2 d^r2 = d^r2 log d).
  (bias * causal_weights({0, 4, 0, 4})).sum().backward();
  EXPECT_TRUE(torch::isfinite(kerple.r2().grad()).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(kerple.r1().grad()).all().item<bool>());
  // d/dr2 of -r1 sum d^r2 over the causal block (d = 1: 3 times, 2: twice, 3: once), head 1:
  // -2 * (2 * 2^0.5 ln 2 + 3^0.5 ln 3) = -5.8257...
  EXPECT_NEAR(kerple.r2().grad()[1].item<double>(), -2.0 * (2 * std::sqrt(2.0) * std::log(2.0) + std::sqrt(3.0) * std::log(3.0)),
              1e-4);
}

TEST(KerpleScheme, ReferenceInitialisationRanges) {
  torch::manual_seed(5);
  Kerple log_kernel(256, Kerple::Variant::kLog), power(256, Kerple::Variant::kPower);
  // log: r1 ~ U(0, 2), r2 ~ U(0, 1); power: r1 ~ U(0, 1), r2 ~ U(0, 2).
  EXPECT_GT(log_kernel.r1().max().item<double>(), 1.5);
  EXPECT_LT(log_kernel.r1().max().item<double>(), 2.0);
  EXPECT_LT(log_kernel.r2().max().item<double>(), 1.0);
  EXPECT_GT(log_kernel.r2().max().item<double>(), 0.8);
  EXPECT_LT(power.r1().max().item<double>(), 1.0);
  EXPECT_GT(power.r2().max().item<double>(), 1.5);
  EXPECT_GE(log_kernel.r1().min().item<double>(), 0.0);
  EXPECT_EQ(resolve_scheme_params(find_scheme("kerple"), nlohmann::json::object()),
            (nlohmann::json{{"variant", "log"}}));
  EXPECT_TRUE(contains(user_error_message([] { build("kerple", {{"variant", "cubic"}}, {16, 2, 1, 32}); }),
                       "position.variant"));
  const auto params = build("kerple", {{"variant", "power"}}, {16, 2, 1, 32})->named_parameters();
  EXPECT_EQ(params.size(), 2u);
  EXPECT_EQ(params["r1"].sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(params["r2"].sizes(), (std::vector<int64_t>{2}));
}

struct KerpleStep {
  torch::Tensor bias, r1, r2;  // what the step's forward used
};

// One AdamW step at learning rate 1 (huge for these parameters) on loss = sign * (sum of the causal
// bias entries of a 16-token window).
KerpleStep kerple_step(Kerple& kerple, AdamW& optimizer, double sign) {
  const auto bias = kerple.score_bias(Positions::arange(16, kCpu), 0, 16, 0, 16);
  KerpleStep used{bias.detach(), kerple.r1().detach().clone(), kerple.r2().detach().clone()};
  optimizer.zero_grad();
  (sign * (bias * causal_weights({0, 16, 0, 16})).sum()).backward();
  optimizer.step(1.0);
  return used;
}

TEST(KerpleScheme, ConstraintsHoldThroughoutAdversarialTraining) {
  const float eps = float(Kerple::kEps);
  for (const auto variant : {Kerple::Variant::kLog, Kerple::Variant::kPower}) {
    const bool log_variant = variant == Kerple::Variant::kLog;
    SCOPED_TRACE(log_variant ? "log" : "power");
    torch::manual_seed(7);
    Kerple kerple(4, variant);
    AdamW optimizer({{"r1", kerple.r1()}, {"r2", kerple.r2()}}, AdamWOptions{});
    // Minimising -sum(bias) shrinks r1 and r2 towards and past 0.
    bool left_below = false;
    for (int step = 0; step < 150; ++step) {
      const auto used = kerple_step(kerple, optimizer, -1.0);
      ASSERT_GE(used.r1.min().item<float>(), eps) << step;
      ASSERT_GE(used.r2.min().item<float>(), eps) << step;
      ASSERT_TRUE(torch::isfinite(used.bias).all().item<bool>()) << step;
      ASSERT_LE(used.bias.max().item<float>(), 0.0f) << step;
      left_below = left_below || kerple.r1().min().item<float>() < eps || kerple.r2().min().item<float>() < eps;
    }
    EXPECT_TRUE(left_below) << "the optimizer never pushed a parameter out of range: the test proves nothing";
    auto used = kerple_step(kerple, optimizer, -1.0);
    EXPECT_EQ(used.r1.max().item<float>(), eps);  // held at the bound
    // Pushing the other way: a parameter at its bound is not stuck (gradients still reach it).
    for (int step = 0; step < 40; ++step) {
      used = kerple_step(kerple, optimizer, 1.0);
      ASSERT_LE(used.r2.max().item<float>(), log_variant ? std::numeric_limits<float>::infinity() : 2.0f) << step;
    }
    EXPECT_GT(used.r1.min().item<float>(), 1.0f);
    if (!log_variant) {
      // Minimising sum(bias) = -sum r1 d^r2 drives the exponent up: it must stop at 2.
      EXPECT_EQ(used.r2.max().item<float>(), 2.0f);
      EXPECT_GT(kerple.r2().max().item<float>(), 2.0f) << "the raw update never left (0, 2]: the test proves nothing";
    }
  }
}

TEST(KerpleScheme, TheTrainersHookProjectsRawValuesIntoTheConstraintSet) {
  // The trainer calls after_optimizer_step after every update, so checkpoints hold valid values.
  for (const auto variant : {Kerple::Variant::kLog, Kerple::Variant::kPower}) {
    Kerple kerple(3, variant);
    {
      torch::NoGradGuard no_grad;
      kerple.r1().copy_(torch::tensor({-2.0f, 0.5f, 0.0f}));
      kerple.r2().copy_(torch::tensor({3.5f, -1.0f, 1.5f}));
    }
    kerple.after_optimizer_step();
    const float eps = float(Kerple::kEps);
    EXPECT_TRUE(torch::equal(kerple.r1(), torch::tensor({eps, 0.5f, eps})));
    const bool power = variant == Kerple::Variant::kPower;
    EXPECT_TRUE(torch::equal(kerple.r2(), torch::tensor({power ? 2.0f : 3.5f, eps, 1.5f}))) << kerple.r2();
  }
}

TEST(AdamWDecay, MatricesDecayButBiasesOfAnyShapeDoNot) {
  const auto grad = torch::requires_grad();
  auto weight = torch::ones({4, 4}, grad), qk_bias = torch::ones({2, 2, 1, 4}, grad), vector = torch::ones({4}, grad);
  AdamW optimizer({{"blocks.0.fc.weight", weight}, {"blocks.0.attn.qk_bias", qk_bias}, {"ln_f.weight", vector}},
                  AdamWOptions{0.9, 0.95, 1e-8, 0.5});
  for (auto* p : {&weight, &qk_bias, &vector}) p->mutable_grad() = torch::zeros_like(*p);
  optimizer.step(0.1);  // zero gradients: only the decay moves a parameter
  EXPECT_TRUE(torch::allclose(weight, torch::full({4, 4}, 0.95f)));
  EXPECT_TRUE(torch::equal(qk_bias, torch::ones({2, 2, 1, 4})));
  EXPECT_TRUE(torch::equal(vector, torch::ones({4})));
}

// ---- Sandwich -----------------------------------------------------------------------------------

TEST(SandwichScheme, HandValuesAtExplicitPositions) {
  // d' = 4: p_i . p_j - 2 = cos(0.01 d) + cos(0.0001 d) - 2, head h of H = 2 divided by 8h/2 = 4h.
  Sandwich sandwich(2, 4);
  const auto bias = sandwich.score_bias(explicit_positions({0, 100, 314, 1000}), 0, 4, 0, 4);
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 4, 4}));
  const std::vector<std::tuple<int, int, double>> head0{
      {1, 0, -0.1149369234}, {2, 0, -0.5001229178}, {3, 0, -0.4610168409},
      {2, 1, -0.3847976052}, {3, 1, -0.4787943822}, {3, 2, -0.0410370073}};
  for (const auto& [i, j, value] : head0) {
    EXPECT_NEAR(bias[0][i][j].item<double>(), value, 1e-6) << i << " " << j;
    EXPECT_NEAR(bias[1][i][j].item<double>(), value / 2, 1e-6) << i << " " << j;
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(bias[0][i][i].item<double>(), 0.0, 1e-9);
  // Arange positions (the cached table path): d = 1 and d = 5 with d' = 4.
  const auto near = sandwich.score_bias(Positions::arange(6, kCpu), 0, 6, 0, 6);
  EXPECT_NEAR(near[0][1][0].item<double>(), -1.2501145834e-05, 1e-9);
  EXPECT_NEAR(near[1][5][0].item<double>(), -1.5623307563e-04, 1e-9);
}

// The bias written out per entry: sum_k cos(d / 10000^(2k/dim)) - dim/2, over 8h/H.
double sandwich_formula(double d, int64_t dim, int64_t heads, int64_t h) {
  double dot = 0;
  for (int64_t k = 1; k <= dim / 2; ++k) dot += std::cos(d / std::pow(10000.0, 2.0 * double(k) / double(dim)));
  return (dot - double(dim / 2)) / (8.0 * double(h + 1) / double(heads));
}

TEST(SandwichScheme, TablePathAndProductPathMatchTheFormula) {
  const int64_t heads = 3, dim = 8, length = 700;
  Sandwich sandwich(heads, dim);
  const auto positions = Positions::arange(length, kCpu);
  for (const BlockRange& b : {BlockRange{600, 700, 0, 700}, BlockRange{640, 700, 0, 4}, BlockRange{0, 64, 0, 64}}) {
    const auto table = sandwich.score_bias(positions, b.q_begin, b.q_end, b.k_begin, b.k_end);
    const auto product = sandwich.score_bias(explicit_arange(length), b.q_begin, b.q_end, b.k_begin, b.k_end);
    ASSERT_EQ(table.sizes(), (std::vector<int64_t>{heads, b.rows(), b.keys()}));
    // Equal where keys are visible (future keys are masked; only their finiteness matters).
    EXPECT_LT(max_abs_diff(table * causal_weights(b), product * causal_weights(b)), 2e-6);
    EXPECT_TRUE(torch::isfinite(table).all().item<bool>());
    for (int64_t i = b.q_begin; i < b.q_end; i += 7) {
      for (int64_t j = b.k_begin; j < std::min(b.k_end, i + 1); j += 3) {
        for (int64_t h = 0; h < heads; ++h) {
          EXPECT_NEAR(table[h][i - b.q_begin][j - b.k_begin].item<double>(), sandwich_formula(double(i - j), dim, heads, h),
                      2e-6);
        }
      }
    }
  }
}

TEST(SandwichScheme, DimensionDefaultsToTheHeadDimension) {
  // d_model 32, 4 heads: d' = 8, the same as an explicit dim 8.
  const auto implicit = build("sandwich", nlohmann::json::object(), {32, 4, 1, 64});
  const auto explicit_dim = build("sandwich", {{"dim", 8}}, {32, 4, 1, 64});
  const auto other_dim = build("sandwich", {{"dim", 16}}, {32, 4, 1, 64});
  const auto positions = Positions::arange(50, kCpu);
  EXPECT_EQ(max_abs_diff(implicit->score_bias(positions, 0, 50, 0, 50), explicit_dim->score_bias(positions, 0, 50, 0, 50)),
            0.0);
  EXPECT_GT(max_abs_diff(implicit->score_bias(positions, 0, 50, 0, 50), other_dim->score_bias(positions, 0, 50, 0, 50)),
            1e-3);
  EXPECT_TRUE(implicit->parameters().empty());
  EXPECT_TRUE(contains(user_error_message([] { build("sandwich", {{"dim", 7}}, {32, 4, 1, 64}); }), "position.dim"));
  EXPECT_TRUE(contains(user_error_message([] { build("sandwich", nlohmann::json::object(), {12, 4, 1, 64}); }),
                       "position.dim"));
  EXPECT_NO_THROW(build("sandwich", {{"dim", 4}}, {12, 4, 1, 64}));
}

}  // namespace
}  // namespace extrap
