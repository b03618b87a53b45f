// ReRoPE / Leaky / InvLeaky ReRoPE (two-pass scores through both attention kernels) and xPos.
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
#include "model/tiled_attention.h"
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
using test::naive_attention;
using test::plain_theta;
using test::to_vector;
using test::transform;
using test::user_error_message;

// ---- ReRoPE ---------------------------------------------------------------------------------------

TEST(ReRope, FarPassIsRopeAtDistanceWindowForEveryPair) {
  torch::manual_seed(9);
  const int64_t hd = 8, T = 30, w = 6;
  const auto q = torch::randn({1, 1, T, hd}), k = torch::randn({1, 1, T, hd});
  const auto scheme = build("rerope", {{"window", w}}, {16, 2, 1, 64});
  auto qk = transform(*scheme, q, k, Positions::arange(T, kCpu));
  ASSERT_TRUE(qk.has_far());
  EXPECT_EQ(qk.rule.far_from, w);
  const auto far = torch::matmul(qk.far_passes[0].q[0][0], qk.far_passes[0].k[0][0].t());
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
    const auto far = torch::matmul(qk.far_passes[0].q[0][0], qk.far_passes[0].k[0][0].t());
    const auto ii = torch::arange(T).unsqueeze(1), jj = torch::arange(T).unsqueeze(0);
    const auto merged = torch::where(ii - jj < qk.rule.far_from, near, far);
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
  EXPECT_LT(max_abs_diff(qk.far_passes[0].q, qk.q), 1e-6);
  EXPECT_LT(max_abs_diff(qk.far_passes[0].k, qk.k), 1e-6);
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
  EXPECT_LT(max_abs_diff(leaky.far_passes[0].q, at_q.q), 1e-6);
  EXPECT_LT(max_abs_diff(leaky.far_passes[0].k, at_k.k), 1e-6);
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
  EXPECT_TRUE(torch::equal(qk.far_passes[0].q.narrow(-1, 4, 4), q.narrow(-1, 4, 4)));
  EXPECT_TRUE(torch::equal(qk.far_passes[0].k.narrow(-1, 4, 4), k.narrow(-1, 4, 4)));
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
        return naive_attention(QueryKey{qk.q, qk.k}, v, scale);
      });
      EXPECT_GT(max_abs_diff(single[0], expected[0]), 1e-3);
      for (const int64_t block : {1, 7, 16, 1000}) {
        const auto blockwise = run([&](const QueryKey& qk, const torch::Tensor& v) {
          return blockwise_causal_attention(qk, v, AttentionCall{*scheme, positions, {}, block, scale}, 0.0, true);
        });
        const auto fused = run([&](const QueryKey& qk, const torch::Tensor& v) {
          return fused_causal_attention(qk, v, AttentionCall{*scheme, positions, {}, block, scale});
        });
        const auto tiled = run([&](const QueryKey& qk, const torch::Tensor& v) {
          return tiled_causal_attention(qk, v, AttentionCall{*scheme, positions, {}, block, scale});
        });
        const char* names[] = {"output", "grad q", "grad k", "grad v"};
        for (int n = 0; n < 4; ++n) {
          ASSERT_TRUE(blockwise[n].defined() && fused[n].defined() && tiled[n].defined()) << names[n];
          EXPECT_LT(max_abs_diff(tiled[n], expected[n]), 2e-5)
              << "tiled " << names[n] << " k=" << leaky << " w=" << window << " block=" << block;
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

}  // namespace
}  // namespace extrap
