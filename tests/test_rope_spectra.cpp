// The 2024–2026 rotary frequency transforms (anchors-2026.md §1a, §1c): p-RoPE, Resonance RoPE,
// Llama 3 scaling, YaRN as Hugging Face defines it, LongRoPE, and Su's base lower bound (Part 18).
// Golden values come from the published formulas, computed independently (Python, transformers'
// definitions) and written down here, never from the implementation under test.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "position/rope.h"
#include "position/rope_bound.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::build;
using test::contains;
using test::user_error_message;

const double kPi = std::acos(-1.0);

RopeSpec spec_of(int64_t head_dim, double base, RopeScaling scaling, double factor, int64_t train_length) {
  RopeSpec spec;
  spec.head_dim = head_dim;
  spec.base = base;
  spec.scaling = scaling;
  spec.factor = factor;
  spec.train_length = train_length;
  return spec;
}

// theta_t of a built scheme (its Rope's frequencies).
torch::Tensor frequencies_of(const nlohmann::json& given, const std::string& scheme, const ModelShape& shape) {
  auto built = build(scheme, given, shape);
  return std::dynamic_pointer_cast<Rope>(built)->inverse_frequencies();
}

TEST(PRope, KeepsTheHighestFrequenciesOfTheOriginalSpectrum) {
  const ModelShape shape{64, 2, 1, 32};  // head_dim 32: 16 pairs
  const auto rope = frequencies_of(nlohmann::json::object(), "rope", shape);
  const auto p_rope = frequencies_of({{"p", 0.75}}, "p_rope", shape);
  for (int64_t t = 0; t < 16; ++t) {
    const double expected = t < 12 ? std::pow(10000.0, -2.0 * double(t) / 32.0) : 0.0;  // floor(0.75 * 16) = 12
    EXPECT_EQ(p_rope[t].item<double>(), t < 12 ? rope[t].item<double>() : 0.0) << t;
    EXPECT_NEAR(p_rope[t].item<double>(), expected, 1e-15) << t;
  }
  EXPECT_TRUE(torch::equal(frequencies_of({{"p", 1.0}}, "p_rope", shape), rope));  // p = 1 is RoPE
  // Not partial rotary: rotary_dims 24 re-spreads b^(-2t/24) over 12 pairs.
  const auto partial = frequencies_of({{"rotary_dims", 24}}, "rope", shape);
  EXPECT_GT(std::abs(partial[11].item<double>() - p_rope[11].item<double>()), 1e-4);
  // The unrotated pairs pass q and k through unchanged, at any position.
  auto scheme = build("p_rope", {{"p", 0.5}}, shape);
  torch::manual_seed(1);
  QueryKey qk{torch::randn({1, 2, 9, 32}), torch::randn({1, 2, 9, 32})};
  const auto q = qk.q.clone();
  scheme->transform_qk(qk, Positions::arange(9, test::kCpu));
  for (int64_t t = 8; t < 16; ++t) {  // pairs (t, t + 16) for t >= floor(0.5 * 16)
    EXPECT_TRUE(torch::equal(qk.q.select(-1, t), q.select(-1, t))) << t;
    EXPECT_TRUE(torch::equal(qk.q.select(-1, t + 16), q.select(-1, t + 16))) << t;
  }
  // Frequency scalings leave the still pairs still.
  const auto scaled = frequencies_of({{"p", 0.5}, {"scaling", "yarn"}, {"factor", 4.0}}, "p_rope", shape);
  EXPECT_EQ(scaled[10].item<double>(), 0.0);
  for (double bad : {0.0, -0.5, 1.5}) {
    EXPECT_TRUE(contains(user_error_message([&] { build("p_rope", {{"p", bad}}, shape); }), "position.p: must be in (0, 1]"));
  }
}

TEST(Llama3Scaling, MatchesTransformersNumberForNumber) {
  RopeSpec spec = spec_of(128, 500000.0, RopeScaling::kLlama3, 8.0, 8192);
  const auto theta = rope_frequencies(spec, 8192 * 8);
  // transformers' _compute_llama3_parameters, factor 8, low 1, high 4, original 8192.
  const std::pair<int, double> golden[] = {{0, 1.0},
                                           {20, 0.016560440080994446},
                                           {40, 3.428102195952591e-05},
                                           {45, 1.2297638677963614e-05},
                                           {50, 4.411534674558404e-06},
                                           {63, 3.068925988914511e-07}};
  for (const auto& [t, value] : golden) EXPECT_NEAR(theta[t].item<double>() / value, 1.0, 1e-12) << t;
  EXPECT_EQ(rope_logit_temperature(spec, 8192 * 8), 1.0);
  // original_length stands in for the training length.
  RopeSpec short_train = spec_of(128, 500000.0, RopeScaling::kLlama3, 8.0, 100);
  short_train.original_length = 8192;
  EXPECT_TRUE(torch::equal(rope_frequencies(short_train, 1000), theta));
}

TEST(YarnHf, MatchesTransformersCorrectionRangeAndRamp) {
  RopeSpec spec = spec_of(64, 10000.0, RopeScaling::kYarnHf, 4.0, 256);
  const auto theta = rope_frequencies(spec, 1024);
  // transformers' _compute_yarn_parameters: beta_fast 32, beta_slow 1, correction range [0, 13].
  const std::pair<int, double> golden[] = {{0, 1.0},
                                           {3, 0.3487105701428661},
                                           {5, 0.1687323598259255},
                                           {8, 0.05384615384615385},
                                           {12, 0.009730085108210397},
                                           {31, 3.33380358040831e-05}};
  for (const auto& [t, value] : golden) EXPECT_NEAR(theta[t].item<double>() / value, 1.0, 1e-12) << t;
  const double mscale = 1.138629436111989;  // 0.1 ln 4 + 1, on q and k
  EXPECT_NEAR(rope_logit_temperature(spec, 1024), mscale * mscale, 1e-12);
  // extrap's documented YaRN ramps on rotations, not on the rounded pair index: the two differ.
  RopeSpec documented = spec;
  documented.scaling = RopeScaling::kYarn;
  EXPECT_GT(std::abs(rope_frequencies(documented, 1024)[5].item<double>() - theta[5].item<double>()), 1e-4);
}

TEST(LongRope, ShortFactorsWithinTheOriginalLengthLongBeyond) {
  const ModelShape shape{16, 2, 1, 64, 64};  // head_dim 8: 4 pairs, train 64
  const nlohmann::json given{{"scaling", "longrope"}, {"short_factor", {1.0, 1.0, 1.5, 2.0}},
                             {"long_factor", {1.0, 2.0, 4.0, 8.0}}, {"original_length", 64}};
  const ModelShape longer{16, 2, 1, 64, 256};
  const auto within = frequencies_of(given, "rope", shape), beyond = frequencies_of(given, "rope", longer);
  const double short_factor[] = {1.0, 1.0, 1.5, 2.0}, long_factor[] = {1.0, 2.0, 4.0, 8.0};
  for (int t = 0; t < 4; ++t) {
    const double plain = std::pow(10000.0, -2.0 * t / 8.0);
    EXPECT_NEAR(within[t].item<double>(), plain / short_factor[t], 1e-15) << t;
    EXPECT_NEAR(beyond[t].item<double>(), plain / long_factor[t], 1e-15) << t;
  }
  // transformers' attention factor sqrt(1 + ln s / ln L_o) on q and k: logits * (1 + ln 4 / ln 64).
  auto built = std::dynamic_pointer_cast<Rope>(build("rope", given, longer));
  EXPECT_NEAR(built->logit_temperature(), 1.0 + std::log(4.0) / std::log(64.0), 1e-12);
  // The same lists from a file.
  const auto file = std::filesystem::temp_directory_path() / "extrap_longrope_factors.json";
  std::ofstream(file) << R"({"short_factor": [1, 1, 1.5, 2], "long_factor": [1, 2, 4, 8]})";
  const auto from_file = frequencies_of({{"scaling", "longrope"}, {"factors_file", file.string()}, {"original_length", 64}},
                                        "rope", longer);
  EXPECT_TRUE(torch::allclose(from_file, beyond, 0, 1e-15));
  std::filesystem::remove(file);
}

TEST(LongRope, RejectsBadFactorLists) {
  const ModelShape shape{16, 2, 1, 64};
  const auto message = [&](const nlohmann::json& extra) {
    nlohmann::json given{{"scaling", "longrope"}, {"short_factor", {1, 1, 1, 1}}, {"long_factor", {1, 2, 4, 8}}};
    given.update(extra);
    return user_error_message([&] { build("rope", given, shape); });
  };
  EXPECT_TRUE(contains(message({{"long_factor", {1, 2, 4}}}), "position.long_factor: expected 4 numbers (one per rotated pair), got 3"));
  EXPECT_TRUE(contains(message({{"short_factor", {1, 0, 1, 1}}}), "position.short_factor: factor 1 is 0; every factor must be > 0"));
  EXPECT_TRUE(contains(message({{"long_factor", {1, 4, 2, 8}}}), "position.long_factor: factor 2 (2) is below the one before it"));
  EXPECT_TRUE(contains(message({{"factors_file", "/nonexistent.json"}}), "not both"));
  EXPECT_TRUE(contains(user_error_message([&] { build("rope", {{"short_factor", {1, 1, 1, 1}}}, shape); }),
                       "position.short_factor: applies only to scaling \"longrope\""));
  EXPECT_TRUE(contains(user_error_message([&] { build("rope", {{"scaling", "llama3"}, {"high_freq_factor", 0.5}}, shape); }),
                       "position.high_freq_factor: must be > low_freq_factor"));
}

TEST(ResonanceRope, RoundsEveryWavelengthToAnIntegerAfterScaling) {
  const ModelShape shape{64, 2, 1, 32, 32};
  for (const nlohmann::json& given : {nlohmann::json{{"resonance", true}},
                                      nlohmann::json{{"resonance", true}, {"scaling", "yarn"}, {"factor", 4.0}}}) {
    const auto theta = frequencies_of(given, "rope", shape);
    auto plain_given = given;
    plain_given.erase("resonance");
    const auto unrounded = frequencies_of(plain_given, "rope", shape);
    for (int64_t t = 0; t < theta.numel(); ++t) {
      const double wavelength = 2.0 * kPi / theta[t].item<double>();
      EXPECT_NEAR(wavelength, std::round(wavelength), 1e-9) << given.dump() << " t=" << t;
      EXPECT_EQ(std::round(wavelength), std::round(2.0 * kPi / unrounded[t].item<double>())) << t;
    }
  }
  // Combined with p-RoPE, still pairs stay still.
  EXPECT_EQ(frequencies_of({{"resonance", true}, {"p", 0.5}}, "p_rope", shape)[15].item<double>(), 0.0);
}

TEST(RopeBaseBound, ReproducesSusTableForHeadDim128) {
  // Su, Part 18 (d = 128): 1k 4.3e3, 2k 1.2e4, 4k 2.7e4 (a pocket below the bisection boundary).
  EXPECT_NEAR(rope_base_lower_bound(1024, 128) / 4.3e3, 1.0, 0.01);
  EXPECT_NEAR(rope_base_lower_bound(2048, 128) / 1.16e4, 1.0, 0.01);
  EXPECT_NEAR(rope_base_lower_bound(4096, 128) / 2.7e4, 1.0, 0.01);
  EXPECT_THROW(rope_base_lower_bound(0, 128), UserError);
  EXPECT_THROW(rope_base_lower_bound(1024, 7), UserError);
}

}  // namespace
}  // namespace extrap
