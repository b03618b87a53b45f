// Position schemes (RoPE, ALiBi, sinusoidal, learned) and the scheme registry. Causality and the
// attention kernels with schemes: test_model_schemes.cpp.
#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/gpt.h"
#include "position/alibi.h"
#include "position/rope.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::build;
using test::contains;
using test::kCpu;
using test::max_abs_diff;
using test::user_error_message;
using test::rotate;

// ---- RoPE -------------------------------------------------------------------------------------

TEST(RopeScheme, InverseFrequenciesGoldenValues) {
  const auto inv = rope_inverse_frequencies(8, 10000.0, torch::TensorOptions());
  ASSERT_EQ(inv.scalar_type(), torch::kFloat64);
  ASSERT_EQ(inv.numel(), 4);
  const double expected[] = {1.0, 0.1, 0.01, 0.001};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(inv[i].item<double>(), expected[i], 1e-15) << i;
}

TEST(RopeScheme, ScoresDependOnlyOnRelativeDistance) {
  torch::manual_seed(11);
  const int64_t length = 48, head_dim = 16;
  Rope rope(head_dim, 10000.0);
  // The same query and key vector at every position: any dependence of q_i . k_j on anything but
  // i - j would come from the rotation.
  auto q = torch::randn({1, 1, 1, head_dim}).expand({1, 1, length, head_dim}).contiguous();
  auto k = torch::randn({1, 1, 1, head_dim}).expand({1, 1, length, head_dim}).contiguous();
  const auto q0 = q.clone();
  rotate(rope, q, k, Positions::arange(length, kCpu));
  ASSERT_EQ(q.sizes(), q0.sizes());
  EXPECT_GT(max_abs_diff(q, q0), 1e-3) << "RoPE left the queries unchanged";
  const auto scores = torch::matmul(q[0][0], k[0][0].t());  // [T, T]
  const auto s = scores.accessor<float, 2>();
  for (int64_t shift : {1, 5, 17, 30}) {
    for (int64_t i = 0; i + shift < length; ++i) {
      for (int64_t j = 0; j + shift < length; ++j) {
        ASSERT_NEAR(s[i][j], s[i + shift][j + shift], 1e-5) << "i=" << i << " j=" << j << " shift=" << shift;
      }
    }
  }
  // ...and the scores do depend on the distance (a no-op rotation would pass the check above).
  EXPECT_GT(std::abs(s[10][0] - s[10][10]), 1e-3);
  EXPECT_GT(std::abs(s[10][3] - s[10][10]), 1e-3);
}

TEST(RopeScheme, RotationPreservesNorms) {
  torch::manual_seed(12);
  Rope rope(8, 10000.0);
  auto q = torch::randn({2, 3, 40, 8});
  auto k = torch::randn({2, 3, 40, 8});
  const auto q_norm = q.norm(2, -1), k_norm = k.norm(2, -1);
  rotate(rope, q, k, Positions::arange(40, kCpu));
  EXPECT_LT(max_abs_diff(q.norm(2, -1), q_norm), 1e-5);
  EXPECT_LT(max_abs_diff(k.norm(2, -1), k_norm), 1e-5);
}

TEST(RopeScheme, CachedAndUncachedTablesAgree) {
  // The arange path slices a cache grown to the longest length; explicit positions recompute.
  Rope rope(8, 10000.0);
  rope.cos_sin(Positions::arange(64, kCpu));
  const auto [cos_cached, sin_cached] = rope.cos_sin(Positions::arange(20, kCpu));
  Positions explicit_positions{torch::arange(20, torch::kFloat64), false};
  const auto [cos_direct, sin_direct] = rope.cos_sin(explicit_positions);
  ASSERT_EQ(cos_cached.sizes(), (std::vector<int64_t>{20, 8}));  // full width: [cos, cos], [-sin, sin]
  EXPECT_TRUE(torch::equal(cos_cached, cos_direct));
  EXPECT_TRUE(torch::equal(sin_cached, sin_direct));
  EXPECT_NEAR(cos_cached[3][1].item<double>(), std::cos(3 * 0.1), 1e-6);
  EXPECT_NEAR(sin_cached[19][0].item<double>(), -std::sin(19.0), 1e-6);
  EXPECT_NEAR(sin_cached[19][4].item<double>(), std::sin(19.0), 1e-6);
  EXPECT_NEAR(cos_cached[3][5].item<double>(), std::cos(3 * 0.1), 1e-6);
}

// ---- ALiBi ------------------------------------------------------------------------------------

TEST(AlibiScheme, PowerOfTwoSlopes) {
  const auto slopes = alibi_slopes(8);
  ASSERT_EQ(slopes.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(slopes[i], std::ldexp(1.0, -(i + 1))) << i;
}

TEST(AlibiScheme, NonPowerOfTwoTakesEveryOtherSlopeOfTheDoubledList) {
  const auto slopes = alibi_slopes(12);
  ASSERT_EQ(slopes.size(), 12u);
  const auto eight = alibi_slopes(8);
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(slopes[i], eight[i]) << i;
  const double tail[] = {std::pow(2.0, -0.5), std::pow(2.0, -1.5), std::pow(2.0, -2.5), std::pow(2.0, -3.5)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(slopes[8 + i], tail[i], 1e-12) << 8 + i;
}

TEST(AlibiScheme, ScoreBiasIsMinusSlopeTimesDistanceUpToARowConstant) {
  Alibi alibi(2);  // slopes 2^-4 and 2^-8
  const double slopes[] = {1.0 / 16.0, 1.0 / 256.0};
  const auto positions = Positions::arange(6, kCpu);
  // Query rows [q0, 6) against keys [k0, 6): one shared row per head, equal to -slope * (i - j)
  // minus the per-row constant -slope * (i - q0), which softmax ignores.
  for (const auto& [q0, k0] : {std::pair<int, int>{0, 0}, {2, 1}, {4, 0}}) {
    const auto bias = alibi.score_bias(positions, q0, 6, k0, 6);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 1, 6 - k0}));
    for (int h = 0; h < 2; ++h) {
      for (int i = q0; i < 6; ++i) {
        for (int j = k0; j < 6; ++j) {
          const double row_constant = -slopes[h] * (i - q0);
          EXPECT_NEAR(bias[h][0][j - k0].item<double>() + row_constant, -slopes[h] * (i - j), 1e-7)
              << h << " " << i << " " << j;
        }
      }
    }
  }
}

// ---- Sinusoidal -------------------------------------------------------------------------------

TEST(SinusoidalScheme, TableGoldenValues) {
  const int64_t d = 6;
  const double base = 10000.0;
  const auto table = sinusoidal_table(torch::arange(5, torch::kFloat64), d, base);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{5, d}));
  for (int64_t c = 0; c < d; ++c) EXPECT_EQ(table[0][c].item<float>(), c % 2 == 0 ? 0.0f : 1.0f) << c;
  for (int64_t p : {1, 2, 4}) {
    for (int64_t i = 0; i < d / 2; ++i) {
      const double angle = double(p) / std::pow(base, double(2 * i) / double(d));
      EXPECT_NEAR(table[p][2 * i].item<double>(), std::sin(angle), 1e-6) << p << " " << i;
      EXPECT_NEAR(table[p][2 * i + 1].item<double>(), std::cos(angle), 1e-6) << p << " " << i;
    }
  }
  // Hand-computed: PE[1, 2] = sin(1 / 10000^(2/6)) = sin(1 / 21.5443...), PE[2, 1] = cos(2).
  EXPECT_NEAR(table[1][2].item<double>(), 0.04639922, 1e-6);
  EXPECT_NEAR(table[2][1].item<double>(), -0.41614684, 1e-6);
}

TEST(SinusoidalScheme, InputEmbeddingIsTheTable) {
  const auto scheme = build("sinusoidal", {{"base", 100.0}}, {8, 2, 1, 16});
  const auto embedding = scheme->input_embedding(Positions::arange(12, kCpu));
  ASSERT_TRUE(embedding.defined());
  EXPECT_TRUE(torch::equal(embedding, sinusoidal_table(torch::arange(12, torch::kFloat64), 8, 100.0)));
}

// ---- Learned ----------------------------------------------------------------------------------

TEST(LearnedScheme, TableSizeDefaultsToTrainLength) {
  const auto max_length = [](const std::string& name, const nlohmann::json& given) {
    return scheme_max_length({name, resolve_scheme_params(find_scheme(name), given)}, {16, 2, 1, 24});
  };
  EXPECT_EQ(max_length("learned", nlohmann::json::object()), 24);
  EXPECT_EQ(max_length("learned", {{"max_positions", 48}}), 48);
  EXPECT_EQ(build("learned", {{"max_positions", 48}}, {16, 2, 1, 24})->input_embedding(Positions::arange(48, kCpu)).size(0), 48);
  // Schemes without a table are unbounded.
  EXPECT_EQ(max_length("rope", nlohmann::json::object()), 0);
}

TEST(LearnedScheme, TableShorterThanTrainLengthIsRejected) {
  const auto message =
      user_error_message([] { build("learned", {{"max_positions", 16}}, {16, 2, 1, 24}); });
  EXPECT_TRUE(contains(message, "position.max_positions")) << message;
  EXPECT_TRUE(contains(message, "24")) << message;
  EXPECT_TRUE(contains(user_error_message([] { build("learned", {{"max_positions", -1}}, {16, 2, 1, 24}); }),
                       "position.max_positions"));
}

// ---- Registry ---------------------------------------------------------------------------------

TEST(SchemeRegistry, ListsTheBuiltInSchemes) {
  std::set<std::string> names;
  for (const auto& info : registered_schemes()) {
    EXPECT_TRUE(names.insert(info.name).second) << info.name << " registered twice";
    EXPECT_TRUE(static_cast<bool>(info.create)) << info.name;
  }
  for (const char* name : {"nope", "learned", "sinusoidal", "rope", "alibi"}) EXPECT_EQ(names.count(name), 1u) << name;
}

TEST(SchemeRegistry, UnknownSchemeListsRegisteredNames) {
  const auto message = user_error_message([] { find_scheme("xpos_typo"); });
  EXPECT_TRUE(contains(message, "xpos_typo")) << message;
  EXPECT_TRUE(contains(message, "position.scheme")) << message;
  for (const auto& info : registered_schemes()) EXPECT_TRUE(contains(message, info.name)) << message;
}

TEST(SchemeRegistry, ResolvesDefaultsAndRejectsBadParams) {
  const auto& rope = find_scheme("rope");
  const auto defaults = resolve_scheme_params(rope, nlohmann::json::object());
  ASSERT_EQ(defaults.size(), rope.params.size());  // every parameter spelled out
  for (const auto& p : rope.params) EXPECT_EQ(defaults.at(p.name), p.default_value) << p.name;
  EXPECT_EQ(defaults.at("base").get<double>(), 10000.0);
  // An integer is accepted where a number is expected.
  EXPECT_EQ(resolve_scheme_params(rope, {{"base", 500}}).at("base").get<double>(), 500.0);

  auto message = user_error_message([&] { resolve_scheme_params(rope, {{"bsae", 500.0}}); });
  EXPECT_TRUE(contains(message, "position.bsae")) << message;
  EXPECT_TRUE(contains(message, "base")) << message;  // lists the scheme's parameters
  message = user_error_message([] { resolve_scheme_params(find_scheme("alibi"), {{"base", 500.0}}); });
  EXPECT_TRUE(contains(message, "position.base")) << message;

  message = user_error_message([&] { resolve_scheme_params(rope, {{"base", "large"}}); });
  EXPECT_TRUE(contains(message, "position.base")) << message;
  message = user_error_message([] { resolve_scheme_params(find_scheme("learned"), {{"max_positions", 64.5}}); });
  EXPECT_TRUE(contains(message, "position.max_positions")) << message;

  message = user_error_message([] { build("rope", {{"base", 1.0}}, {16, 2, 1, 8}); });
  EXPECT_TRUE(contains(message, "position.base")) << message;
}

TEST(SchemeRegistry, RopeRejectsOddHeadDimension) {
  const auto message = user_error_message([] { build("rope", nlohmann::json::object(), {6, 2, 1, 8}); });
  EXPECT_TRUE(contains(message, "odd")) << message;
  EXPECT_TRUE(contains(message, "model.d_model")) << message;
  EXPECT_NO_THROW(build("alibi", nlohmann::json::object(), {6, 2, 1, 8}));
}

TEST(SchemeRegistry, ValidationBuildsNothingAndDrawsNoRandomNumbers) {
  // Learned, T5 (init_std > 0), FIRE and DPB draw their initial weights when built; checking their
  // params must not, or validating a config would shift every later random number.
  const ModelShape shape{16, 2, 2, 32};
  torch::manual_seed(7);
  const auto expected = torch::randn({8});
  torch::manual_seed(7);
  for (const auto& info : registered_schemes()) {
    nlohmann::json position{{"scheme", info.name}};
    if (info.name == "t5") position["init_std"] = 0.5;
    EXPECT_NO_THROW(resolve_position(position, "position", shape)) << info.name;
  }
  EXPECT_TRUE(torch::equal(torch::randn({8}), expected));
  // The checks still run: a bad value is caught without building.
  EXPECT_TRUE(contains(user_error_message([&] { resolve_position({{"scheme", "fire"}, {"mlp_width", 0}}, "position", shape); }),
                       "position.mlp_width: must be >= 1"));
}

TEST(SchemeRegistry, DeclaredHooksMatchWhatTheSchemesDo) {
  // Embedding, q/k and bias hooks are checked against the class at compile time (define_scheme);
  // the far passes are behaviour, checked here: exactly the kFarPassHook schemes add far pairs, as
  // many as their rule merges.
  const ModelShape shape{16, 2, 2, 32};
  const auto q = torch::randn({1, 2, 6, 8}), k = torch::randn({1, 2, 6, 8});
  for (const auto& info : registered_schemes()) {
    const auto scheme = build(info.name, nlohmann::json::object(), shape);
    QueryKey qk{q, k};
    scheme->transform_qk(qk, Positions::arange(6, kCpu));
    EXPECT_EQ(qk.has_far(), bool(info.hooks & kFarPassHook)) << info.name;
    EXPECT_EQ(qk.rule.chunk > 0, bool(info.hooks & kChunkedPassHook)) << info.name;
    EXPECT_EQ(qk.rule.passes(), 1 + int(qk.far_passes.size())) << info.name;
    EXPECT_EQ(!torch::equal(qk.q, q), bool(info.hooks & kQueryKeyHook)) << info.name;
    EXPECT_EQ(scheme->input_embedding(Positions::arange(6, kCpu)).defined(), bool(info.hooks & kEmbeddingHook)) << info.name;
    EXPECT_EQ(scheme->score_bias(Positions::arange(6, kCpu), 0, 6, 0, 6).defined(), bool(info.hooks & kBiasHook))
        << info.name;
  }
}

TEST(SchemeRegistry, InferenceTimeParametersAreDeclaredPerScheme) {
  const auto inference = [](const std::string& scheme) {
    std::set<std::string> names;
    for (const auto& p : find_scheme(scheme).params) {
      if (p.inference) names.insert(p.name);
    }
    return names;
  };
  const std::set<std::string> rotary_knobs{"scaling",         "factor",          "mixed_exponent", "yarn_alpha",
                                           "yarn_beta",       "yarn_temperature", "low_freq_factor", "high_freq_factor",
                                           "original_length", "short_factor",    "long_factor",    "factors_file",
                                           "resonance"};
  EXPECT_EQ(inference("rope"), rotary_knobs);
  EXPECT_EQ(inference("p_rope"), rotary_knobs);  // p is trained: the still pairs are part of the weights' world
  EXPECT_EQ(inference("rerope"), (std::set<std::string>{"window", "leaky_factor"}));
  for (const char* trained_only : {"xpos", "alibi", "kerple", "t5", "fire", "learned"}) {
    EXPECT_TRUE(inference(trained_only).empty()) << trained_only;
  }
}

}  // namespace
}  // namespace extrap
