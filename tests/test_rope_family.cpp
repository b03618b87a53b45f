// The RoPE family: frequency scaling (PI, NTK-old/aware/fixed/mixed, dynamic NTK, YaRN), parameters
// and partial rotary. ReRoPE and xPos: test_rerope_xpos.cpp; registry, configs and long positions:
// test_rope_long.cpp.
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
using test::contains;
using test::explicit_positions;
using test::kCpu;
using test::max_abs_diff;
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
                                    RopeScaling::kDynamicNtk, RopeScaling::kYarn,     RopeScaling::kYarnHf,
                                    RopeScaling::kLlama3};

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

}  // namespace
}  // namespace extrap
