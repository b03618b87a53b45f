// The RoPE family: partial rotary, frequency scaling (PI, NTK-old/aware/fixed/mixed, dynamic NTK,
// YaRN), ReRoPE / Leaky / InvLeaky ReRoPE (two-pass scores through both attention kernels) and xPos.
// Expected values are computed here from the published formulas (closed forms in float64), never
// from the implementation under test.
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "position/rerope.h"
#include "position/rope.h"
#include "position/scheme.h"
#include "position/xpos.h"

namespace extrap {
namespace {

using test::build;
using test::closed_form_score;
using test::config_path;
using test::contains;
using test::explicit_positions;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
using test::plain_theta;
using test::to_vector;
using test::transform;
using test::user_error_message;

const double kPi = std::acos(-1.0);

void expect_frequencies(const torch::Tensor& got, const std::vector<double>& expected, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), torch::kFloat64) << what;
  ASSERT_EQ(got.numel(), int64_t(expected.size())) << what;
  for (std::size_t t = 0; t < expected.size(); ++t) {
    EXPECT_NEAR(got[t].item<double>() / expected[t], 1.0, 1e-12) << what << " t=" << t;
  }
}

RopeSpec spec8(RopeScaling scaling, double factor, int64_t train_length = 100) {
  RopeSpec spec;
  spec.head_dim = 8;
  spec.base = 10000.0;
  spec.scaling = scaling;
  spec.factor = factor;
  spec.train_length = train_length;
  return spec;
}

const RopeScaling kAllScalings[] = {RopeScaling::kNone,     RopeScaling::kPi,       RopeScaling::kNtkOld,
                                    RopeScaling::kNtkAware, RopeScaling::kNtkFixed, RopeScaling::kNtkMixed,
                                    RopeScaling::kDynamicNtk, RopeScaling::kYarn};

// ---- Frequency scaling --------------------------------------------------------------------------

TEST(RopeScaling, FrequenciesGoldenValues) {
  // d = 8, base 10^4: plain theta = 1, 0.1, 0.01, 0.001. Extension factor s = 4 (fixed).
  const double s = 4.0;
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kNone, 0.0), 400), {1.0, 0.1, 0.01, 0.001}, "none");
  // PI: theta / 4.
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kPi, s), 100), {0.25, 0.025, 0.0025, 0.00025}, "pi");
  // NTK-old: base 40000 -> 40000^(-t/4) = 1, 1/sqrt(200), 1/200, 200^(-3/2).
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kNtkOld, s), 100),
                     {1.0, 1.0 / std::sqrt(200.0), 0.005, std::pow(200.0, -1.5)}, "ntk_old");
  // NTK-aware: base * 4^(8/6) -> theta_t * 4^(-t/3): the lowest frequency exactly theta / 4.
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kNtkAware, s), 100),
                     {1.0, 0.1 / std::cbrt(4.0), 0.01 / std::cbrt(16.0), 0.00025}, "ntk_aware");
  // NTK-fixed: lambda = 4^(2/8) = sqrt 2, theta_t / lambda^(t+1) = 1/sqrt2, 0.1/2, 0.01/(2 sqrt2), 0.001/4.
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kNtkFixed, s), 100),
                     {1.0 / std::sqrt(2.0), 0.05, 0.01 / (2.0 * std::sqrt(2.0)), 0.00025}, "ntk_fixed");
  // NTK-mixed, b = 0.5: a = ln 4 / 4^0.5 = ln 2, factor exp(-ln2 sqrt(t+1)) = 2^-sqrt(t+1).
  auto mixed = spec8(RopeScaling::kNtkMixed, s);
  mixed.mixed_exponent = 0.5;
  expect_frequencies(rope_frequencies(mixed, 100),
                     {0.5, 0.1 * std::pow(2.0, -std::sqrt(2.0)), 0.01 * std::pow(2.0, -std::sqrt(3.0)), 0.00025},
                     "ntk_mixed");
}

TEST(RopeScaling, NtkMixedAtSusDefaultExponent) {
  // Spec §3.9 [I]: d = 128, k = 8, b = 0.625 (the default): a = ln 8 / 64^0.625 = 0.1546, and the
  // per-pair division factor Lambda_m = exp(a m^b) is 1.167 at m = 1, 3.85 at m = 32, 8 at m = 64.
  RopeSpec spec;
  spec.head_dim = 128;
  spec.scaling = RopeScaling::kNtkMixed;
  spec.factor = 8.0;
  spec.train_length = 512;
  EXPECT_EQ(spec.mixed_exponent, 0.625);
  const auto plain = rope_inverse_frequencies(128, 10000.0, torch::TensorOptions());
  const auto ratio = plain / rope_frequencies(spec, 4096);
  EXPECT_NEAR(ratio[0].item<double>(), 1.167, 5e-4);
  EXPECT_NEAR(ratio[31].item<double>(), 3.851, 5e-4);
  EXPECT_NEAR(ratio[63].item<double>(), 8.0, 1e-9);
  for (int64_t t = 1; t < 64; ++t) EXPECT_GT(ratio[t].item<double>(), ratio[t - 1].item<double>()) << t;
}

TEST(RopeScaling, DerivedFactorFollowsTheBuiltLength) {
  // factor 0: s = max(1, context / train_length); a fixed factor applies at every length.
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kPi, 0.0, 128), 512), 4.0);
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kPi, 0.0, 128), 128), 1.0);
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kPi, 0.0, 128), 64), 1.0);
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kYarn, 0.0, 128), 200), 200.0 / 128.0);
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kNtkOld, 8.0, 128), 128), 8.0);
  EXPECT_EQ(rope_extension_factor(spec8(RopeScaling::kDynamicNtk, 0.0, 128), 1024), 1.0);  // s = 1
  // Derived s = 4 at 400 tokens gives the same frequencies as a fixed factor 4.
  for (const auto scaling : {RopeScaling::kPi, RopeScaling::kNtkOld, RopeScaling::kNtkAware, RopeScaling::kNtkFixed,
                             RopeScaling::kNtkMixed, RopeScaling::kYarn}) {
    EXPECT_TRUE(torch::equal(rope_frequencies(spec8(scaling, 0.0), 400), rope_frequencies(spec8(scaling, 4.0), 100)))
        << rope_scaling_name(scaling);
  }
  // Through the registry: the scheme built for 512 tokens of a 128-token model has PI's theta / 4.
  const auto scheme = build("rope", {{"scaling", "pi"}}, {32, 2, 1, 128, 512});
  const auto* rope = dynamic_cast<Rope*>(scheme.get());
  ASSERT_NE(rope, nullptr);
  std::vector<double> quarter;  // head_dim 16: theta_t = 10^4^(-t/8), divided by 4
  for (int t = 0; t < 8; ++t) quarter.push_back(0.25 * std::pow(10.0, -t / 2.0));
  expect_frequencies(rope->inverse_frequencies(), quarter, "pi built at 512");
}

TEST(RopeScaling, DynamicNtkGoldenValuesAndPlainWithinTrainLength) {
  // train 100, built for 300: base' = 10^4 (s*3 - (s-1))^(8/6); theta_t = theta_t(plain) * X^(-t/3).
  const auto dyn1 = spec8(RopeScaling::kDynamicNtk, 0.0);  // s = 1: X = 3
  expect_frequencies(rope_frequencies(dyn1, 300), {1.0, 0.1 / std::cbrt(3.0), 0.01 / std::cbrt(9.0), 0.001 / 3.0},
                     "dynamic s=1");
  const auto dyn2 = spec8(RopeScaling::kDynamicNtk, 2.0);  // s = 2: X = 6 - 1 = 5
  expect_frequencies(rope_frequencies(dyn2, 300), {1.0, 0.1 / std::cbrt(5.0), 0.01 / std::cbrt(25.0), 0.001 / 5.0},
                     "dynamic s=2");
  const auto plain = rope_frequencies(spec8(RopeScaling::kNone, 0.0), 100);
  for (int64_t length : {1, 50, 100}) {
    EXPECT_TRUE(torch::equal(rope_frequencies(dyn1, length), plain)) << length;
    EXPECT_TRUE(torch::equal(rope_frequencies(dyn2, length), plain)) << length;
  }
}

TEST(RopeScaling, YarnGoldenValuesAndTemperature) {
  // train 100, s = 4, alpha 1, beta 32. r_t = 100 theta_t / (2 pi) = 15.915, 1.5915, 0.159, 0.0159:
  // gamma_0 = (15.915 - 1)/31, gamma_1 = (1.5915 - 1)/31, gamma_2 = gamma_3 = 0 (fully interpolated).
  const double r0 = 100.0 / (2 * kPi), r1 = 10.0 / (2 * kPi);
  const double g0 = (r0 - 1.0) / 31.0, g1 = (r1 - 1.0) / 31.0;
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kYarn, 4.0), 100),
                     {g0 + (1 - g0) / 4, 0.1 * (g1 + (1 - g1) / 4), 0.0025, 0.00025}, "yarn L=100");
  EXPECT_NEAR(g0, 0.48114497771579, 1e-12);  // hand check of the ramp
  // train 1000: r_0 = 159 > 32 keeps theta_0, r_1 = 15.9 and r_2 = 1.59 ramp, r_3 = 0.159 interpolates.
  const double h1 = (10 * r1 - 1.0) / 31.0, h2 = (r1 - 1.0) / 31.0;
  expect_frequencies(rope_frequencies(spec8(RopeScaling::kYarn, 4.0, 1000), 1000),
                     {1.0, 0.1 * (h1 + (1 - h1) / 4), 0.01 * (h2 + (1 - h2) / 4), 0.00025}, "yarn L=1000");
  // alpha/beta move the ramp: beta = 10 puts r_0 = 15.9 above it (unchanged).
  auto narrow = spec8(RopeScaling::kYarn, 4.0);
  narrow.yarn_beta = 10.0;
  EXPECT_DOUBLE_EQ(rope_frequencies(narrow, 100)[0].item<double>(), 1.0);
  // Temperature: logits * (1 + 0.1 ln s)^2 (YaRN's mscale on both q and k), 1 at s = 1 or when off.
  EXPECT_NEAR(rope_logit_temperature(spec8(RopeScaling::kYarn, 4.0), 100), 1.2964769927807063, 1e-14);
  EXPECT_NEAR(rope_logit_temperature(spec8(RopeScaling::kYarn, 0.0), 800), std::pow(1 + 0.1 * std::log(8.0), 2), 1e-14);
  EXPECT_EQ(rope_logit_temperature(spec8(RopeScaling::kYarn, 0.0), 100), 1.0);
  auto off = spec8(RopeScaling::kYarn, 4.0);
  off.yarn_temperature = false;
  EXPECT_EQ(rope_logit_temperature(off, 100), 1.0);
  EXPECT_EQ(rope_logit_temperature(spec8(RopeScaling::kNtkAware, 4.0), 100), 1.0);
}

TEST(RopeScaling, YarnTemperatureMultipliesTheLogits) {
  torch::manual_seed(3);
  const ModelShape shape{24, 2, 1, 16, 64};  // head_dim 12, s = 4
  auto q = torch::randn({1, 2, 20, 12}), k = torch::randn({1, 2, 20, 12});
  const auto positions = Positions::arange(20, kCpu);
  for (const int64_t rotary : {0, 8}) {  // the pass-through dims of partial rotary are scaled too
    auto with = transform(*build("rope", {{"scaling", "yarn"}, {"rotary_dims", rotary}}, shape), q, k, positions);
    auto without = transform(*build("rope", {{"scaling", "yarn"}, {"rotary_dims", rotary}, {"yarn_temperature", false}}, shape),
                             q, k, positions);
    const auto s_with = torch::matmul(with.q, with.k.transpose(-2, -1));
    const auto s_without = torch::matmul(without.q, without.k.transpose(-2, -1));
    EXPECT_LT(max_abs_diff(s_with, s_without * std::pow(1 + 0.1 * std::log(4.0), 2)), 1e-4) << rotary;
    EXPECT_GT(max_abs_diff(s_with, s_without), 0.1) << rotary;
  }
}

TEST(RopeScaling, EveryScalingIsExactlyPlainRopeAtFactorOne) {
  torch::manual_seed(5);
  const auto q = torch::randn({2, 2, 40, 16}), k = torch::randn({2, 2, 40, 16});
  for (const auto& positions : {Positions::arange(40, kCpu), explicit_positions(std::vector<double>(40, 7.25))}) {
    auto plain = transform(*build("rope", nlohmann::json::object(), {32, 2, 1, 64, 64}), q, k, positions);
    for (const auto scaling : kAllScalings) {
      // Training (context = train_length) and evaluation within it (context < train_length).
      for (const int64_t context : {64, 40}) {
        const nlohmann::json given{{"scaling", rope_scaling_name(scaling)}};
        auto got = transform(*build("rope", given, {32, 2, 1, 64, context}), q, k, positions);
        EXPECT_TRUE(torch::equal(got.q, plain.q)) << rope_scaling_name(scaling) << " " << context;
        EXPECT_TRUE(torch::equal(got.k, plain.k)) << rope_scaling_name(scaling) << " " << context;
        EXPECT_TRUE(torch::equal(rope_frequencies(spec8(scaling, 0.0, 64), context),
                                 rope_frequencies(spec8(RopeScaling::kNone, 0.0, 64), context)))
            << rope_scaling_name(scaling);
      }
    }
    // dynamic_ntk with a fixed factor is still plain within the training length.
    auto dyn = transform(*build("rope", {{"scaling", "dynamic_ntk"}, {"factor", 2.0}}, {32, 2, 1, 64, 64}), q, k, positions);
    EXPECT_TRUE(torch::equal(dyn.q, plain.q));
    // ...and every scaling does change something once the context is longer.
    for (const auto scaling : kAllScalings) {
      if (scaling == RopeScaling::kNone) continue;
      auto longer = transform(*build("rope", {{"scaling", rope_scaling_name(scaling)}}, {32, 2, 1, 64, 256}), q, k, positions);
      EXPECT_GT(max_abs_diff(longer.q, plain.q), 1e-4) << rope_scaling_name(scaling);
    }
  }
}

TEST(RopeScaling, StructuralIdentities) {
  const double s = 8.0;
  for (const int64_t d : {8, 64}) {
    RopeSpec base;
    base.head_dim = d;
    base.factor = s;
    base.train_length = 128;
    auto with = [&](RopeScaling scaling, double b = 0.625) {
      RopeSpec spec = base;
      spec.scaling = scaling;
      spec.mixed_exponent = b;
      return rope_frequencies(spec, 128);
    };
    const auto plain = with(RopeScaling::kNone);
    // Su: NTK-mixed with b = 1 is NTK-fixed, b = 0 is PI.
    EXPECT_LT(max_abs_diff(with(RopeScaling::kNtkMixed, 1.0) / with(RopeScaling::kNtkFixed), torch::ones({d / 2})), 1e-13);
    EXPECT_LT(max_abs_diff(with(RopeScaling::kNtkMixed, 0.0) / with(RopeScaling::kPi), torch::ones({d / 2})), 1e-13);
    // NTK-aware, fixed and mixed interpolate the lowest frequency by exactly s; aware and old keep the highest.
    const double lowest = plain[d / 2 - 1].item<double>() / s;
    for (const auto scaling : {RopeScaling::kNtkAware, RopeScaling::kNtkFixed, RopeScaling::kNtkMixed}) {
      EXPECT_NEAR(with(scaling)[d / 2 - 1].item<double>() / lowest, 1.0, 1e-12) << rope_scaling_name(scaling);
    }
    EXPECT_EQ(with(RopeScaling::kNtkAware)[0].item<double>(), 1.0);
    EXPECT_EQ(with(RopeScaling::kNtkOld)[0].item<double>(), 1.0);
    // NTK-old is base * s: the lowest frequency is only s^((d-2)/d)-interpolated.
    EXPECT_NEAR(with(RopeScaling::kNtkOld)[d / 2 - 1].item<double>() / plain[d / 2 - 1].item<double>(),
                std::pow(s, -double(d - 2) / double(d)), 1e-12);
    // Mixed's per-digit scale is monotone between 1 and s.
    const auto ratio = to_vector(plain / with(RopeScaling::kNtkMixed));
    for (std::size_t t = 1; t < ratio.size(); ++t) EXPECT_GT(ratio[t], ratio[t - 1]);
  }
}

TEST(RopeScaling, PiScoresEqualPlainRopeAtDividedPositions) {
  torch::manual_seed(6);
  const auto q = torch::randn({1, 1, 30, 8}), k = torch::randn({1, 1, 30, 8});
  auto pi = transform(*build("rope", {{"scaling", "pi"}, {"factor", 3.0}}, {8, 1, 1, 10}), q, k, Positions::arange(30, kCpu));
  std::vector<double> divided;
  for (int i = 0; i < 30; ++i) divided.push_back(i / 3.0);
  auto plain = transform(*build("rope", nlohmann::json::object(), {8, 1, 1, 10}), q, k, explicit_positions(divided));
  EXPECT_LT(max_abs_diff(pi.q, plain.q), 1e-6);
  EXPECT_LT(max_abs_diff(pi.k, plain.k), 1e-6);
}

// ---- Parameters ---------------------------------------------------------------------------------

TEST(RopeParams, DefaultsAreThePlainRope) {
  const auto resolved = resolve_scheme_params(find_scheme("rope"), nlohmann::json::object());
  EXPECT_EQ(resolved.at("base"), 10000.0);
  EXPECT_EQ(resolved.at("rotary_dims"), 0);
  EXPECT_EQ(resolved.at("scaling"), "none");
  EXPECT_EQ(resolved.at("factor"), 0.0);
  EXPECT_EQ(resolved.at("mixed_exponent"), 0.625);
  EXPECT_EQ(resolved.at("yarn_alpha"), 1.0);
  EXPECT_EQ(resolved.at("yarn_beta"), 32.0);
  EXPECT_EQ(resolved.at("yarn_temperature"), true);
  // A checkpoint's config with only {"base": ...} resolves to the same scheme as before: plain RoPE,
  // bit for bit, at any built length.
  torch::manual_seed(7);
  const auto q = torch::randn({1, 2, 33, 16}), k = torch::randn({1, 2, 33, 16});
  Rope reference(16, 500.0);
  auto expected = transform(reference, q, k, Positions::arange(33, kCpu));
  auto got = transform(*build("rope", {{"base", 500}}, {32, 2, 1, 16, 4096}), q, k, Positions::arange(33, kCpu));
  EXPECT_TRUE(torch::equal(got.q, expected.q));
  EXPECT_TRUE(torch::equal(got.k, expected.k));
  EXPECT_FALSE(got.has_far());
}

TEST(RopeParams, RejectsImpossibleValues) {
  const ModelShape shape{32, 2, 1, 16};  // head_dim 16
  const auto rejects = [&](const nlohmann::json& given, const std::string& key, const std::string& detail = "") {
    const auto message = user_error_message([&] { build("rope", given, shape); });
    EXPECT_TRUE(contains(message, "position." + key)) << given.dump() << ": " << message;
    if (!detail.empty()) {
      EXPECT_TRUE(contains(message, detail)) << given.dump() << ": " << message;
    }
  };
  rejects({{"rotary_dims", 5}}, "rotary_dims", "even");
  rejects({{"rotary_dims", 18}}, "rotary_dims", "16");
  rejects({{"rotary_dims", -2}}, "rotary_dims");
  rejects({{"scaling", "ntk"}}, "scaling", "ntk_aware");  // lists the accepted names
  rejects({{"scaling", "pi"}, {"factor", 0.5}}, "factor");
  rejects({{"scaling", "pi"}, {"factor", -2.0}}, "factor");
  rejects({{"factor", 4.0}}, "factor", "none");  // a factor without a scaling does nothing
  rejects({{"scaling", "ntk_mixed"}, {"mixed_exponent", 1.5}}, "mixed_exponent");
  rejects({{"scaling", "yarn"}, {"yarn_beta", 1.0}}, "yarn_beta");
  rejects({{"scaling", "yarn"}, {"yarn_alpha", -1.0}}, "yarn_alpha");
  EXPECT_TRUE(contains(user_error_message([] { resolve_scheme_params(find_scheme("rope"), {{"scaling", 3}}); }),
                       "position.scaling"));
  // Partial rotary allows an odd head dimension; the whole-head rotation does not.
  EXPECT_NO_THROW(build("rope", {{"rotary_dims", 4}}, {10, 2, 1, 16}));
  EXPECT_TRUE(contains(user_error_message([] { build("rope", nlohmann::json::object(), {10, 2, 1, 16}); }), "odd"));
  EXPECT_NO_THROW(build("rope", {{"rotary_dims", 16}, {"scaling", "ntk_mixed"}, {"factor", 8}}, shape));
}

// ---- Partial rotary -------------------------------------------------------------------------------

TEST(RopePartial, RotatesOnlyTheFirstDimsPairingTWithTPlusHalf) {
  // head_dim 8, rotary_dims 4, base 100: theta = 1, 100^(-2/4) = 0.1; pairs (0, 2) and (1, 3).
  const auto scheme = build("rope", {{"rotary_dims", 4}, {"base", 100.0}}, {16, 2, 1, 8});
  const auto x = torch::arange(1, 9, torch::kFloat32).view({1, 1, 1, 8}).expand({1, 1, 3, 8}).contiguous();
  auto qk = transform(*scheme, x, x, Positions::arange(3, kCpu));
  const auto row = to_vector(qk.q[0][0][2]);  // position 2: angles 2 and 0.2
  const double expected[] = {1 * std::cos(2.0) - 3 * std::sin(2.0), 2 * std::cos(0.2) - 4 * std::sin(0.2),
                             3 * std::cos(2.0) + 1 * std::sin(2.0), 4 * std::cos(0.2) + 2 * std::sin(0.2),
                             5, 6, 7, 8};
  EXPECT_NEAR(expected[0], -3.1440391170241875, 1e-12);  // hand-computed
  for (int d = 0; d < 8; ++d) EXPECT_NEAR(row[d], expected[d], 1e-5) << d;
  EXPECT_TRUE(torch::equal(qk.k.narrow(-1, 4, 4), x.narrow(-1, 4, 4)));
  EXPECT_TRUE(torch::equal(qk.q[0][0][0], x[0][0][0]));  // position 0: identity
}

TEST(RopePartial, ScoresMatchTheClosedForm) {
  torch::manual_seed(8);
  const int64_t hd = 12, dims = 8, T = 24;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto q = qv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto k = kv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  auto qk = transform(*build("rope", {{"rotary_dims", dims}}, {24, 2, 1, 16}), q, k, Positions::arange(T, kCpu));
  const auto scores = torch::matmul(qk.q[0][0], qk.k[0][0].t());
  const auto theta = plain_theta(dims, 10000.0);
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      ASSERT_NEAR(scores[i][j].item<double>(), closed_form_score(to_vector(qv), to_vector(kv), theta, double(i - j)), 1e-4)
          << i << " " << j;
    }
  }
}

// ---- ReRoPE ---------------------------------------------------------------------------------------

TEST(ReRope, FarPassIsRopeAtDistanceWindowForEveryPair) {
  torch::manual_seed(9);
  const int64_t hd = 8, T = 30, w = 6;
  const auto q = torch::randn({1, 1, T, hd}), k = torch::randn({1, 1, T, hd});
  const auto scheme = build("rerope", {{"window", w}}, {16, 2, 1, 64});
  auto qk = transform(*scheme, q, k, Positions::arange(T, kCpu));
  ASSERT_TRUE(qk.has_far());
  EXPECT_EQ(qk.far_from, w);
  const auto far = torch::matmul(qk.q_far[0][0], qk.k_far[0][0].t());
  const auto near = torch::matmul(qk.q[0][0], qk.k[0][0].t());
  const auto theta = plain_theta(hd, 10000.0);
  for (int64_t i = 0; i < T; ++i) {
    const auto qi = to_vector(q[0][0][i]);
    for (int64_t j = 0; j <= i; ++j) {
      const auto kj = to_vector(k[0][0][j]);
      if (i - j >= w) {
        ASSERT_NEAR(far[i][j].item<double>(), closed_form_score(qi, kj, theta, double(w)), 1e-5) << i << " " << j;
      }
      ASSERT_NEAR(near[i][j].item<double>(), closed_form_score(qi, kj, theta, double(i - j)), 1e-5) << i << " " << j;
    }
  }
}

// pos(r) = r for r < w, w + (r - w)/k beyond (k = 0: ReRoPE, pos = w).
double leaky_position(double r, double w, double k) { return r < w ? r : (k == 0.0 ? w : w + (r - w) / k); }

TEST(ReRope, MergedScoresFollowTheLeakyRelativePositionMap) {
  torch::manual_seed(10);
  const int64_t hd = 8, T = 40, w = 8;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto q = qv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto k = kv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto theta = plain_theta(hd, 10000.0);
  for (const double leaky : {0.0, 2.0, 16.0, 0.0625}) {
    auto qk = transform(*build("rerope", {{"window", w}, {"leaky_factor", leaky}}, {16, 2, 1, 64}), q, k,
                        Positions::arange(T, kCpu));
    const auto near = torch::matmul(qk.q[0][0], qk.k[0][0].t());
    const auto far = torch::matmul(qk.q_far[0][0], qk.k_far[0][0].t());
    const auto ii = torch::arange(T).unsqueeze(1), jj = torch::arange(T).unsqueeze(0);
    const auto merged = torch::where(ii - jj < qk.far_from, near, far);
    for (int64_t i = 0; i < T; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        const double expected = closed_form_score(to_vector(qv), to_vector(kv), theta, leaky_position(i - j, w, leaky));
        ASSERT_NEAR(merged[i][j].item<double>(), expected, 2e-5) << "k=" << leaky << " i=" << i << " j=" << j;
      }
    }
  }
}

TEST(ReRope, LeakyFactorOneIsPlainRopeAndPositionsComeFromTheValues) {
  torch::manual_seed(11);
  const auto q = torch::randn({2, 2, 16, 8}), k = torch::randn({2, 2, 16, 8});
  std::vector<double> values;
  for (int i = 0; i < 16; ++i) values.push_back(2.5 * i + 1.0);
  const auto positions = explicit_positions(values);
  auto qk = transform(*build("rerope", {{"window", 4}, {"leaky_factor", 1.0}}, {16, 2, 1, 64}), q, k, positions);
  EXPECT_LT(max_abs_diff(qk.q_far, qk.q), 1e-6);
  EXPECT_LT(max_abs_diff(qk.k_far, qk.k), 1e-6);
  auto plain = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, 64}), q, k, positions);
  EXPECT_TRUE(torch::equal(qk.q, plain.q));  // the near pass is RoPE at positions.values
  EXPECT_TRUE(torch::equal(qk.k, plain.k));
  // Leaky with float positions: query at (p - w)/k + w, key at p/k.
  auto leaky = transform(*build("rerope", {{"window", 4}, {"leaky_factor", 4.0}}, {16, 2, 1, 64}), q, k, positions);
  std::vector<double> query_at, key_at;
  for (double p : values) {
    query_at.push_back((p - 4.0) / 4.0 + 4.0);
    key_at.push_back(p / 4.0);
  }
  auto at_q = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, 64}), q, k, explicit_positions(query_at));
  auto at_k = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, 64}), q, k, explicit_positions(key_at));
  EXPECT_LT(max_abs_diff(leaky.q_far, at_q.q), 1e-6);
  EXPECT_LT(max_abs_diff(leaky.k_far, at_k.k), 1e-6);
}

TEST(ReRope, DefaultWindowAndParameterChecks) {
  const auto scheme = build("rerope", nlohmann::json::object(), {16, 2, 1, 128});
  const auto* rerope = dynamic_cast<ReRope*>(scheme.get());
  ASSERT_NE(rerope, nullptr);
  EXPECT_EQ(rerope->window(), 32);  // train_length / 4
  EXPECT_EQ(rerope->leaky_factor(), 0.0);
  EXPECT_EQ(dynamic_cast<ReRope*>(build("rerope", nlohmann::json::object(), {16, 2, 1, 2}).get())->window(), 1);
  EXPECT_TRUE(contains(user_error_message([] { build("rerope", {{"window", -1}}, {16, 2, 1, 128}); }), "position.window"));
  EXPECT_TRUE(contains(user_error_message([] { build("rerope", {{"leaky_factor", -0.5}}, {16, 2, 1, 128}); }),
                       "position.leaky_factor"));
  EXPECT_TRUE(contains(user_error_message([] { build("rerope", {{"rotary_dims", 3}}, {16, 2, 1, 128}); }),
                       "position.rotary_dims"));
  EXPECT_TRUE(contains(user_error_message([] { build("rerope", {{"base", 0.5}}, {16, 2, 1, 128}); }), "position.base"));
  // Partial rotary: the pass-through dims score q.k in both passes.
  torch::manual_seed(12);
  const auto q = torch::randn({1, 1, 12, 8}), k = torch::randn({1, 1, 12, 8});
  auto qk = transform(*build("rerope", {{"rotary_dims", 4}, {"window", 3}}, {16, 2, 1, 128}), q, k,
                      Positions::arange(12, kCpu));
  EXPECT_TRUE(torch::equal(qk.q_far.narrow(-1, 4, 4), q.narrow(-1, 4, 4)));
  EXPECT_TRUE(torch::equal(qk.k_far.narrow(-1, 4, 4), k.narrow(-1, 4, 4)));
}

TEST(ReRope, KernelsMatchNaiveTwoMatrixAttentionWithGradients) {
  const int64_t B = 2, H = 3, T = 37, hd = 8;
  const double scale = 1.0 / std::sqrt(double(hd));
  for (const double leaky : {0.0, 16.0, 0.0625}) {
    for (const int64_t window : {5, 16}) {
      torch::manual_seed(13);
      const auto q0 = torch::randn({B, H, T, hd}), k0 = torch::randn({B, H, T, hd}), v0 = torch::randn({B, H, T, hd});
      const auto upstream = torch::randn({B, T, H, hd});
      const auto scheme = build("rerope", {{"window", window}, {"leaky_factor", leaky}}, {H * hd, H, 1, 64});
      const auto positions = Positions::arange(T, kCpu);
      // Returns the output and the gradients of <output, upstream> w.r.t. the raw q, k, v.
      const auto run = [&](const std::function<torch::Tensor(const QueryKey&, const torch::Tensor&)>& attend) {
        auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
        auto qk = transform(*scheme, q, k, positions);
        auto out = attend(qk, v);
        (out * upstream).sum().backward();
        return std::vector<torch::Tensor>{out.detach(), q.grad(), k.grad(), v.grad()};
      };
      const auto expected = run([&](const QueryKey& qk, const torch::Tensor& v) { return naive_attention(qk, v, scale); });
      // The far pass matters here (the test could not pass with a single pass).
      const auto single = run([&](const QueryKey& qk, const torch::Tensor& v) {
        QueryKey near{qk.q, qk.k};
        near.q_far = qk.q;
        near.k_far = qk.k;
        near.far_from = T;
        return naive_attention(near, v, scale);
      });
      EXPECT_GT(max_abs_diff(single[0], expected[0]), 1e-3);
      for (const int64_t block : {1, 7, 16, 1000}) {
        const auto blockwise = run([&](const QueryKey& qk, const torch::Tensor& v) {
          return blockwise_causal_attention(qk, v, AttentionCall{*scheme, positions, {}, block, scale}, 0.0, true);
        });
        const auto fused = run([&](const QueryKey& qk, const torch::Tensor& v) {
          return fused_causal_attention(qk, v, AttentionCall{*scheme, positions, {}, block, scale});
        });
        const char* names[] = {"output", "grad q", "grad k", "grad v"};
        for (int n = 0; n < 4; ++n) {
          ASSERT_TRUE(blockwise[n].defined() && fused[n].defined()) << names[n];
          EXPECT_LT(max_abs_diff(blockwise[n], expected[n]), 2e-5)
              << "blockwise " << names[n] << " k=" << leaky << " w=" << window << " block=" << block;
          EXPECT_LT(max_abs_diff(fused[n], expected[n]), 2e-5)
              << "fused " << names[n] << " k=" << leaky << " w=" << window << " block=" << block;
        }
      }
    }
  }
}

// ---- xPos -----------------------------------------------------------------------------------------

TEST(XPos, ZetaCentreAndTablesGoldenValues) {
  const auto zeta = to_vector(xpos_zeta(8));
  const double expected[] = {0.4 / 1.4, 0.65 / 1.4, 0.9 / 1.4, 1.15 / 1.4};
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(zeta[t], expected[t], 1e-15) << t;
  // T = 5: centre ceil(5/2) = 3, so position 0 has power -3/scale_base. scale_base 2: zeta_0^-1.5 = 3.5^1.5.
  XPos xpos(8, 10000.0, 2.0);
  const auto t = xpos.tables(Positions::arange(5, kCpu));
  ASSERT_EQ(t.size(), 4u);
  ASSERT_EQ(t[0].sizes(), (std::vector<int64_t>{5, 8}));
  EXPECT_NEAR(t[0][0][0].item<double>(), 6.547900426854398, 1e-5);           // cos(0) * zeta_0^(-3/2)
  EXPECT_NEAR(t[2][0][4].item<double>(), 1.0 / 6.547900426854398, 1e-7);     // key: zeta_0^(+3/2)
  EXPECT_NEAR(t[0][3][1].item<double>(), std::cos(0.3), 1e-6);               // position 3 = centre: no scale
  EXPECT_NEAR(t[1][4][5].item<double>(), std::sin(0.4) * std::pow(0.65 / 1.4, 0.5), 1e-6);  // power +1/2
  EXPECT_NEAR(t[3][4][1].item<double>(), -std::sin(0.4) / std::pow(0.65 / 1.4, 0.5), 1e-6);
  EXPECT_EQ(xpos_max_length(512.0), 69478);  // 2 floor(85 * 512 / ln 3.5)
}

TEST(XPos, ScoreIsRopeTimesDecayAndDependsOnlyOnDistance) {
  torch::manual_seed(14);
  const int64_t hd = 8, T = 64;
  const double scale_base = 16.0;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto q = qv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto k = kv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  auto qk = transform(*build("xpos", {{"scale_base", scale_base}}, {16, 2, 1, 32}), q, k, Positions::arange(T, kCpu));
  const auto scores = torch::matmul(qk.q[0][0], qk.k[0][0].t());
  const auto theta = plain_theta(hd, 10000.0);
  const auto zeta = to_vector(xpos_zeta(hd));
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      std::vector<double> decay;
      for (double z : zeta) decay.push_back(std::pow(z, double(i - j) / scale_base));
      ASSERT_NEAR(scores[i][j].item<double>(), closed_form_score(to_vector(qv), to_vector(kv), theta, double(i - j), decay),
                  1e-5)
          << i << " " << j;
      if (j > 0) {
        ASSERT_NEAR(scores[i][j].item<double>(), scores[i - 1][j - 1].item<double>(), 1e-5);
      }
    }
  }
}

TEST(XPos, IsolatedPairDecaysAsZetaToTheDistanceOverScaleBase) {
  const int64_t hd = 8, T = 200;
  const double scale_base = 32.0;
  const auto zeta = to_vector(xpos_zeta(hd));
  for (int64_t t = 0; t < hd / 2; ++t) {
    auto v = torch::zeros({hd});
    v[t] = 1.0;
    v[t + hd / 2] = 0.5;
    const auto x = v.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
    auto xq = transform(*build("xpos", {{"scale_base", scale_base}}, {16, 2, 1, 32}), x, x, Positions::arange(T, kCpu));
    auto rq = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, 32}), x, x, Positions::arange(T, kCpu));
    const auto xs = torch::matmul(xq.q[0][0], xq.k[0][0].t()), rs = torch::matmul(rq.q[0][0], rq.k[0][0].t());
    for (int64_t r : {0, 1, 10, 64, 150}) {
      const int64_t i = T - 1, j = i - r;
      const double rope_score = rs[i][j].item<double>();
      if (std::abs(rope_score) < 0.2) continue;  // a ratio near a zero of the cosine says little
      EXPECT_NEAR(xs[i][j].item<double>() / rope_score, std::pow(zeta[t], double(r) / scale_base), 1e-4)
          << "t=" << t << " r=" << r;
    }
  }
}

TEST(XPos, NoOverflowAt65536TokensAndScoresStayRelative) {
  torch::manual_seed(15);
  const int64_t hd = 8, T = 65536;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto q = qv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto k = kv.view({1, 1, 1, hd}).expand({1, 1, T, hd}).contiguous();
  const auto scheme = build("xpos", nlohmann::json::object(), {16, 2, 1, 128, T});
  const auto defaults = resolve_scheme_params(find_scheme("xpos"), nlohmann::json::object());
  EXPECT_GE(scheme_max_length({"xpos", defaults}, {16, 2, 1, 128, T}), T);
  auto qk = transform(*scheme, q, k, Positions::arange(T, kCpu));
  EXPECT_TRUE(torch::isfinite(qk.q).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(qk.k).all().item<bool>());
  // The scales reach zeta_0^(-+64) ~ 6.6e34 / 1.5e-35, both normal float32 numbers.
  EXPECT_GT(qk.q.abs().max().item<double>(), 1e33);
  EXPECT_GT((qk.k[0][0][0].abs().max()).item<double>(), 0.0);
  const auto theta = plain_theta(hd, 10000.0);
  const auto zeta = to_vector(xpos_zeta(hd));
  const auto qf = qk.q[0][0].to(torch::kFloat64), kf = qk.k[0][0].to(torch::kFloat64);
  const std::pair<int64_t, int64_t> pairs[] = {{0, 0}, {T - 1, T - 1}, {32768, 32768}, {T - 1, T - 2}, {1, 0},
                                               {40000, 39990}, {T - 1, 0}, {30000, 100}, {T - 1, T - 513}};
  for (const auto& [i, j] : pairs) {
    std::vector<double> decay;
    double magnitude = 0;
    for (double z : zeta) decay.push_back(std::pow(z, double(i - j) / 512.0));
    const auto a = to_vector(qv), b = to_vector(kv);
    for (std::size_t t = 0; t < decay.size(); ++t) {
      const std::size_t u = t + decay.size();
      magnitude += decay[t] * (std::abs(a[t] * b[t]) + std::abs(a[u] * b[u]) + std::abs(a[t] * b[u]) + std::abs(a[u] * b[t]));
    }
    const double got = torch::dot(qf[i], kf[j]).item<double>();
    EXPECT_NEAR(got, closed_form_score(to_vector(qv), to_vector(kv), theta, double(i - j), decay), 1e-5 * magnitude + 1e-30)
        << i << " " << j;
  }
  // Beyond the float32 range the scheme says so instead of producing inf.
  EXPECT_EQ(scheme_max_length({"xpos", defaults}, {16, 2, 1, 128, T}), 69478);
  const auto message = user_error_message([&] {
    QueryKey small{torch::zeros({1, 1, 70000, hd}), torch::zeros({1, 1, 70000, hd})};
    scheme->transform_qk(small, Positions::arange(70000, kCpu));
  });
  EXPECT_TRUE(contains(message, "xpos")) << message;
  EXPECT_TRUE(contains(message, "scale_base")) << message;
}

TEST(XPos, ParameterChecks) {
  EXPECT_TRUE(contains(user_error_message([] { build("xpos", {{"scale_base", 0.0}}, {16, 2, 1, 128}); }),
                       "position.scale_base"));
  EXPECT_TRUE(contains(user_error_message([] { build("xpos", {{"base", 1.0}}, {16, 2, 1, 128}); }), "position.base"));
  // scale_base 1 covers 2 floor(85 / ln 3.5) = 134 positions: too few for a 256-token model.
  EXPECT_TRUE(contains(user_error_message([] { build("xpos", {{"scale_base", 1.0}}, {16, 2, 1, 256}); }),
                       "position.scale_base"));
  EXPECT_NO_THROW(build("xpos", {{"scale_base", 1.0}}, {16, 2, 1, 128}));
  EXPECT_TRUE(contains(user_error_message([] { build("xpos", nlohmann::json::object(), {6, 2, 1, 128}); }), "odd"));
}

// ---- Registry and configs ---------------------------------------------------------------------------

TEST(RopeFamilyRegistry, SchemesAreRegisteredRotaryWithTheirHooks) {
  for (const char* name : {"rope", "rerope", "xpos"}) {
    const auto& info = find_scheme(name);
    EXPECT_EQ(info.family, "rotary") << name;
    EXPECT_FALSE(info.integer_positions) << name;
    EXPECT_FALSE(info.description.empty()) << name;
    EXPECT_FALSE(info.reference.empty()) << name;
    EXPECT_TRUE(info.hooks & kQueryKeyHook) << name;
    for (const auto& p : info.params) EXPECT_FALSE(p.description.empty()) << name << "." << p.name;
  }
  EXPECT_TRUE(find_scheme("rerope").hooks & kFarPassHook);
  EXPECT_FALSE(find_scheme("rope").hooks & kFarPassHook);
  EXPECT_FALSE(find_scheme("xpos").hooks & kFarPassHook);
  const auto params = resolve_scheme_params(find_scheme("rerope"), nlohmann::json::object());
  EXPECT_EQ(params, (nlohmann::json{{"base", 10000.0}, {"rotary_dims", 0}, {"window", 0}, {"leaky_factor", 0.0}}));
  EXPECT_EQ(resolve_scheme_params(find_scheme("xpos"), nlohmann::json::object()),
            (nlohmann::json{{"base", 10000.0}, {"scale_base", 512.0}}));
}

TEST(RopeFamilyConfigs, ShippedConfigsResolve) {
  const auto partial = load_config(config_path("rope_partial.json"));
  EXPECT_EQ(partial.position.scheme, "rope");
  EXPECT_EQ(partial.position.params.at("rotary_dims"), partial.model.head_dim() / 2);
  const auto xpos = load_config(config_path("xpos.json"));
  EXPECT_EQ(xpos.position.scheme, "xpos");
  const auto invleaky = load_config(config_path("invleaky_rerope.json"));
  EXPECT_EQ(invleaky.position.scheme, "rerope");
  EXPECT_EQ(invleaky.position.params.at("leaky_factor"), 0.0625);
  const auto built = make_scheme("rerope", invleaky.position.params,
                                 {invleaky.model.d_model, invleaky.model.n_heads, invleaky.model.n_layers,
                                  invleaky.data.train_length});
  EXPECT_EQ(dynamic_cast<ReRope*>(built.get())->window(), invleaky.data.train_length / 4);
  const auto qk_bias = load_config(config_path("rope_qk_bias.json"));
  EXPECT_EQ(qk_bias.position.scheme, "rope");
  EXPECT_FALSE(qk_bias.model.bias);
  EXPECT_TRUE(qk_bias.layers.at(0).attention.qk_bias);
}

// ---- Long positions: float32 scores against float64 closed forms ---------------------------------

// Far beyond any training length, in groups where the distances 0, 1, 6 and 7 recur.
const std::vector<double> kLongPositions = {0,      1,      7,      65536,   65537,   65543,
                                            100000, 100001, 100007, 1 << 20, (1 << 20) + 1, (1 << 20) + 7};

// The same random q and k at every position of a window of `count`: [1, 1, count, dims].
QueryKey repeated_query_key(const torch::Tensor& qv, const torch::Tensor& kv, int64_t count) {
  const int64_t dims = qv.numel();
  return {qv.view({1, 1, 1, dims}).expand({1, 1, count, dims}).contiguous(),
          kv.view({1, 1, 1, dims}).expand({1, 1, count, dims}).contiguous()};
}

TEST(RopeLongPositions, ScoresFollowThePolarClosedFormAndDependOnlyOnTheDistance) {
  torch::manual_seed(16);
  const int64_t hd = 16, half = hd / 2;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto a = to_vector(qv), b = to_vector(kv);
  const auto theta = plain_theta(hd, 10000.0);
  // Pair t as complex numbers a_t = q_t + i q_{t+d/2}: q_m . k_n = sum_t |a_t||b_t| cos((m - n) theta_t + phase_t)
  // with phase_t = arg a_t - arg b_t; the sum of |a_t||b_t| bounds it.
  const auto closed_form = [&](double rel) {
    double score = 0;
    for (int64_t t = 0; t < half; ++t) {
      const double phase = std::atan2(a[t + half], a[t]) - std::atan2(b[t + half], b[t]);
      score += std::hypot(a[t], a[t + half]) * std::hypot(b[t], b[t + half]) * std::cos(rel * theta[t] + phase);
    }
    return score;
  };
  double magnitude = 0;
  for (int64_t t = 0; t < half; ++t) magnitude += std::hypot(a[t], a[t + half]) * std::hypot(b[t], b[t + half]);
  const double tolerance = 4e-6 * magnitude;  // float32 rounding; a float32 angle at 2^20 would be off by ~0.06

  const auto rope = build("rope", nlohmann::json::object(), {32, 2, 1, 128});
  const int64_t n = int64_t(kLongPositions.size());
  const QueryKey raw = repeated_query_key(qv, kv, n);
  const auto qk = transform(*rope, raw.q, raw.k, explicit_positions(kLongPositions));
  const auto scores = torch::matmul(qk.q[0][0], qk.k[0][0].t()).to(torch::kFloat64);
  std::map<double, double> score_at_distance;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double rel = kLongPositions[i] - kLongPositions[j], got = scores[i][j].item<double>();
      ASSERT_NEAR(got, closed_form(rel), tolerance) << kLongPositions[i] << " " << kLongPositions[j];
      const auto [seen, is_new] = score_at_distance.emplace(rel, got);
      if (!is_new) {
        ASSERT_NEAR(got, seen->second, 2 * tolerance) << "m - n = " << rel << " at " << kLongPositions[i];
      }
    }
  }
  EXPECT_GT(std::abs(closed_form(1.0) - closed_form(65536.0)), 0.01 * magnitude) << "the distance matters";

  // The cached 0..T-1 tables, past 100,000 tokens.
  const int64_t T = 100001;
  const QueryKey raw_long = repeated_query_key(qv, kv, T);
  const auto long_qk = transform(*rope, raw_long.q, raw_long.k, Positions::arange(T, kCpu));
  for (const int64_t j : {int64_t(0), int64_t(34464), int64_t(65536), int64_t(99993), int64_t(100000)}) {
    const double got = torch::dot(long_qk.q[0][0][T - 1], long_qk.k[0][0][j]).item<double>();
    EXPECT_NEAR(got, closed_form(double(T - 1 - j)), tolerance) << j;
  }
}

TEST(XPosLongPositions, ScoresAreRopeTimesTheDecayAtAnyOffsetAndTheRangeGuardCountsTheSpan) {
  torch::manual_seed(17);
  const int64_t hd = 8, half = hd / 2;
  const double scale_base = 512.0;
  const auto qv = torch::randn({hd}), kv = torch::randn({hd});
  const auto a = to_vector(qv), b = to_vector(kv);
  const auto theta = plain_theta(hd, 10000.0);
  // docs: zeta_t = (2t/d + 0.4) / 1.4; pair t's score is RoPE's times zeta_t^((m - n)/scale_base).
  const auto decay = [&](double rel) {
    std::vector<double> d;
    for (int64_t t = 0; t < half; ++t) d.push_back(std::pow((2.0 * double(t) / double(hd) + 0.4) / 1.4, rel / scale_base));
    return d;
  };
  const auto bound = [&](double rel) {  // sum of the pair terms' magnitudes
    const auto d = decay(rel);
    double sum = 0;
    for (int64_t t = 0; t < half; ++t) sum += d[t] * std::hypot(a[t], a[t + half]) * std::hypot(b[t], b[t + half]);
    return sum;
  };
  const auto xpos = build("xpos", {{"scale_base", scale_base}}, {16, 2, 1, 128});
  // Each window is scaled about its own centre: the scores may not depend on where it lies.
  std::map<double, double> score_at_distance;
  for (const double offset : {65536.0, 100000.0, double(1 << 20)}) {
    const std::vector<double> positions = {offset, offset + 1, offset + 7, offset + 4000};
    const QueryKey raw = repeated_query_key(qv, kv, int64_t(positions.size()));
    const auto qk = transform(*xpos, raw.q, raw.k, explicit_positions(positions));
    const auto qf = qk.q[0][0].to(torch::kFloat64), kf = qk.k[0][0].to(torch::kFloat64);
    for (std::size_t i = 0; i < positions.size(); ++i) {
      for (std::size_t j = 0; j <= i; ++j) {
        const double rel = positions[i] - positions[j], got = torch::dot(qf[i], kf[j]).item<double>();
        ASSERT_NEAR(got, closed_form_score(a, b, theta, rel, decay(rel)), 1e-5 * bound(rel) + 1e-30)
            << positions[i] << " " << positions[j];
        const auto [seen, is_new] = score_at_distance.emplace(rel, got);
        if (!is_new) {
          ASSERT_NEAR(got, seen->second, 2e-5 * bound(rel)) << "m - n = " << rel << " at " << offset;
        }
      }
    }
  }
  // The guard (docs: at most xpos_max_length(scale_base) = 69,478 consecutive positions at 512)
  // bounds the span of a window, not its positions: 2^20 .. 2^20 + 69,477 runs, one more does not.
  const double far = double(1 << 20);
  const QueryKey pair = repeated_query_key(qv, kv, 2);
  const auto edge = transform(*xpos, pair.q, pair.k, explicit_positions({far, far + 69477}));
  EXPECT_TRUE(torch::isfinite(edge.q).all().item<bool>() && torch::isfinite(edge.k).all().item<bool>());
  EXPECT_NEAR(torch::dot(edge.q[0][0][1], edge.k[0][0][1]).item<double>(), closed_form_score(a, b, theta, 0.0),
              1e-4 * bound(0.0));  // one of q, k is scaled by ~e^-85 there, near float32's smallest normal
  const auto message = user_error_message([&] { transform(*xpos, pair.q, pair.k, explicit_positions({far, far + 69478})); });
  EXPECT_TRUE(contains(message, "xpos")) << message;
  EXPECT_TRUE(contains(message, "scale_base")) << message;
}

}  // namespace
}  // namespace extrap
