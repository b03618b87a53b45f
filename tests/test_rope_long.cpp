// The RoPE family in the registry and the shipped configs, and float32 scores at long positions
// against float64 closed forms.
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
using test::plain_theta;
using test::to_vector;
using test::transform;
using test::user_error_message;

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
