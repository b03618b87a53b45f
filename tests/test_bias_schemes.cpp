// The relative-position bias schemes t5, kerple, sandwich, fire and dpb: golden values computed by hand,
// constraints under training, agreement of the two attention kernels (outputs and gradients,
// including the schemes' own parameters) and causality.
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
using test::config_path;
using test::contains;
using test::explicit_positions;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
using test::user_error_message;

// The same positions 0..T-1, but flagged as explicit: schemes take their general path.
Positions explicit_arange(int64_t length) { return Positions{torch::arange(length, torch::kFloat64), false}; }

void set_values(torch::Tensor& param, const torch::Tensor& values) {
  torch::NoGradGuard no_grad;
  param.copy_(values.reshape(param.sizes()));
}

// [rows, keys] float: 1 where key j <= query i (the entries that matter), 0 elsewhere.
torch::Tensor causal_weights(const BlockRange& b) {
  auto i = torch::arange(b.q_begin, b.q_end).unsqueeze(1), j = torch::arange(b.k_begin, b.k_end).unsqueeze(0);
  return (j <= i).to(torch::kFloat32);
}

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

torch::Tensor attend(bool fused, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     PositionScheme& scheme, const Positions& positions, const KeyMask& mask, int64_t block) {
  const AttentionCall call{scheme, positions, mask, block, 0.5};
  QueryKey qk;
  qk.q = q;
  qk.k = k;
  return fused ? fused_causal_attention(qk, v, call) : blockwise_causal_attention(qk, v, call, 0.0, false);
}

// 45 sorted distinct integer positions from [0, 200): random-position training's kind of window.
Positions random_positions(int64_t length) {
  torch::manual_seed(78);
  return Positions{std::get<0>(torch::randperm(200, torch::kInt64).slice(0, 0, length).sort()).to(torch::kFloat64),
                   false};
}

TEST(BiasSchemeKernels, BothKernelsMatchFullAttentionWithAndWithoutAWindow) {
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
          EXPECT_LT(max_abs_diff(attend(true, q, k, v, *scheme, positions, mask, block), expected), 1e-5) << block;
          EXPECT_LT(max_abs_diff(attend(false, q, k, v, *scheme, positions, mask, block), expected), 1e-5) << block;
        }
      }
    }
  }
}

struct Gradients {
  torch::Tensor out;
  std::vector<torch::Tensor> grads;  // q, k, v, then the scheme's parameters
};

Gradients attention_gradients(bool fused, const torch::Tensor& q0, const torch::Tensor& k0, const torch::Tensor& v0,
                              PositionScheme& scheme, const Positions& positions, const KeyMask& mask,
                              const torch::Tensor& weights) {
  auto q = q0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true),
       v = v0.clone().set_requires_grad(true);
  for (auto& p : scheme.parameters()) p.mutable_grad() = torch::Tensor();
  auto out = attend(fused, q, k, v, scheme, positions, mask, 7);
  (out * weights).sum().backward();
  Gradients result{out.detach(), {q.grad(), k.grad(), v.grad()}};
  for (auto& p : scheme.parameters()) {
    result.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
  return result;
}

TEST(BiasSchemeKernels, FusedGradientsMatchBlockwiseForInputsAndSchemeParameters) {
  const int64_t length = 40;
  torch::manual_seed(80);
  const auto q = torch::randn({2, 3, length, 8}), k = torch::randn({2, 3, length, 8}), v = torch::randn({2, 3, length, 8});
  const auto weights = torch::randn({2, length, 3, 8});
  for (const auto& [label, scheme] : bias_schemes()) {
    for (const auto& positions : {Positions::arange(length, kCpu), random_positions(length)}) {
      for (const KeyMask mask : {KeyMask{}, KeyMask{16, 4}}) {
        SCOPED_TRACE(label + (positions.is_arange ? " arange" : " random positions") +
                     (mask.window ? " window 16 + 4 sinks" : " full"));
        const auto fused = attention_gradients(true, q, k, v, *scheme, positions, mask, weights);
        const auto plain = attention_gradients(false, q, k, v, *scheme, positions, mask, weights);
        EXPECT_LT(max_abs_diff(fused.out, plain.out), 1e-5);
        ASSERT_EQ(fused.grads.size(), plain.grads.size());
        for (std::size_t g = 0; g < fused.grads.size(); ++g) {
          const double scale = 1.0 + plain.grads[g].abs().max().item<double>();
          EXPECT_LT(max_abs_diff(fused.grads[g], plain.grads[g]), 2e-5 * scale) << "gradient " << g;
          // Every learnable parameter receives a gradient (index >= 3 are the scheme's).
          EXPECT_GT(fused.grads[g].abs().max().item<double>(), 0.0) << "gradient " << g << " is zero";
        }
        EXPECT_EQ(fused.grads.size(), 3 + scheme->parameters().size());
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
