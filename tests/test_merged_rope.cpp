// The training-free merged-score RoPE methods: Self-Extend, STRING, Dual Chunk Attention, and
// LM-Infinite (ReRoPE clamped at the training length under a Λ mask). Each method's relative
// position map is written here from its paper and reference code, pair by pair, and the merged
// score must be RoPE's closed form at that position; the kernels must match a full-matrix
// reference in outputs and gradients.
#include <cmath>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_inputs.h"
#include "test_helpers.h"

#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::build;
using test::closed_form_score;
using test::contains;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
using test::plain_theta;
using test::to_vector;
using test::transform;
using test::user_error_message;

using RelativeMap = std::function<int64_t(int64_t i, int64_t j)>;

struct Method {
  const char* scheme;
  nlohmann::json params;
  RelativeMap relative;  // the RoPE distance the method scores pair (i, j) at
};

constexpr int64_t kTrain = 32;  // the training length of the shapes below

std::vector<Method> methods() {
  const int64_t G = 3, W = 5;             // Self-Extend: LongLM's group_size_1, group_size_2
  const int64_t S = 10, Ws = 3;           // STRING
  const int64_t s = 12, w = 2, c = s - w; // DCA: chunk size, local window, chunk length
  return {
      {"self_extend", {{"group_size", G}, {"window", W}},
       [=](int64_t i, int64_t j) { return i - j < W ? i - j : (i / G + W - W / G) - j / G; }},
      {"string", {{"shift", S}, {"window", Ws}}, [=](int64_t i, int64_t j) { return i - j < S ? i - j : i - j - S + Ws; }},
      {"dual_chunk", {{"chunk_size", s}, {"local_window", w}},
       [=](int64_t i, int64_t j) {
         if (i / c == j / c) return i % c - j % c;
         if (i / c == j / c + 1) return std::min(i % c + c, s) - j % c;
         return std::min(2 * c - 1, s) - j % c;
       }},
      {"rerope", {{"window", kTrain}},  // LM-Infinite's distance clamp at L_train
       [](int64_t i, int64_t j) { return std::min(i - j, kTrain); }},
  };
}

TEST(MergedRope, MergedScoresAreRopeAtEachMethodsRelativePosition) {
  torch::manual_seed(61);
  const int64_t hd = 8, T = 70;
  const auto q = torch::randn({1, 1, T, hd}, torch::kFloat64).to(torch::kFloat32);
  const auto k = torch::randn({1, 1, T, hd}, torch::kFloat64).to(torch::kFloat32);
  const auto theta = plain_theta(hd, 10000.0);
  for (const auto& method : methods()) {
    SCOPED_TRACE(method.scheme);
    const auto qk = transform(*build(method.scheme, method.params, {16, 2, 1, kTrain}), q, k, Positions::arange(T, kCpu));
    ASSERT_TRUE(qk.has_far());
    std::vector<torch::Tensor> scores;  // every pass's full score matrix
    for (int p = 0; p < qk.rule.passes(); ++p) scores.push_back(torch::matmul(qk.query(p)[0][0], qk.key(p)[0][0].t()));
    std::vector<int> used(qk.rule.passes(), 0);
    for (int64_t i = 0; i < T; ++i) {
      const auto qi = to_vector(q[0][0][i]);
      for (int64_t j = 0; j <= i; ++j) {
        const int p = qk.rule.pass(i, j);
        ++used[p];
        ASSERT_NEAR(scores[p][i][j].item<double>(), closed_form_score(qi, to_vector(k[0][0][j]), theta, double(method.relative(i, j))),
                    2e-5)
            << "query " << i << " key " << j << " pass " << p;
      }
    }
    for (int p = 0; p < qk.rule.passes(); ++p) EXPECT_GT(used[p], 0) << "pass " << p << " scores no pair";
  }
}

// group_size 0: the smallest G whose grouped distances stay below L_train at the built length.
TEST(MergedRope, SelfExtendFitsItsGroupToTheEvaluatedLength) {
  torch::manual_seed(65);
  const auto q = torch::randn({1, 1, 200, 8}), k = torch::randn({1, 1, 200, 8});
  const auto positions = Positions::arange(200, kCpu);
  const nlohmann::json fit = {{"window", 8}};
  // (200 - 1) / G + 8 - 8 / G < 32 first holds at G = 8 (24 + 8 - 1 = 31); G = 7 gives 28 + 8 - 1 = 35.
  const auto fitted = transform(*build("self_extend", fit, {16, 2, 1, kTrain, 200}), q, k, positions);
  const auto eight = transform(*build("self_extend", {{"window", 8}, {"group_size", 8}}, {16, 2, 1, kTrain}), q, k, positions);
  EXPECT_TRUE(torch::equal(fitted.far_passes[0].q, eight.far_passes[0].q));
  EXPECT_TRUE(torch::equal(fitted.far_passes[0].k, eight.far_passes[0].k));
  // Within the training length nothing is grouped: G = 1, plain RoPE in both passes.
  const auto within = transform(*build("self_extend", fit, {16, 2, 1, kTrain, kTrain}), q, k, positions);
  const auto rope = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, kTrain}), q, k, positions);
  EXPECT_LT(max_abs_diff(within.far_passes[0].k, rope.k), 1e-6);
}

TEST(MergedRope, SelfExtendWithGroupOneIsRope) {
  torch::manual_seed(62);
  const auto q = torch::randn({2, 2, 20, 8}), k = torch::randn({2, 2, 20, 8});
  const auto positions = Positions::arange(20, kCpu);
  const auto rope = transform(*build("rope", nlohmann::json::object(), {16, 2, 1, kTrain}), q, k, positions);
  const auto grouped = transform(*build("self_extend", {{"group_size", 1}, {"window", 4}}, {16, 2, 1, kTrain}), q, k, positions);
  EXPECT_TRUE(torch::equal(grouped.q, rope.q));
  EXPECT_LT(max_abs_diff(grouped.far_passes[0].q, rope.q), 1e-6);
  EXPECT_LT(max_abs_diff(grouped.far_passes[0].k, rope.k), 1e-6);
}

// Outputs and q, k, v gradients through the scheme and every kernel, against the full matrices,
// with query blocks that straddle the methods' boundaries (and DCA's chunks) in every way.
TEST(MergedRope, KernelsMatchTheFullMatrixReferenceWithGradients) {
  const int64_t B = 2, H = 3, T = 45, hd = 8;
  const double scale = 1.0 / std::sqrt(double(hd));
  for (const auto& method : methods()) {
    torch::manual_seed(63);
    const auto q0 = torch::randn({B, H, T, hd}), k0 = torch::randn({B, H, T, hd}), v0 = torch::randn({B, H, T, hd});
    const auto upstream = torch::randn({B, T, H, hd});
    const auto scheme = build(method.scheme, method.params, {H * hd, H, 1, kTrain});
    const auto positions = Positions::arange(T, kCpu);
    const auto run = [&](const std::function<torch::Tensor(const QueryKey&, const torch::Tensor&)>& attend) {
      auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
      auto out = attend(transform(*scheme, q, k, positions), v);
      (out * upstream).sum().backward();
      return std::vector<torch::Tensor>{out.detach(), q.grad(), k.grad(), v.grad()};
    };
    const auto expected = run([&](const QueryKey& qk, const torch::Tensor& v) { return naive_attention(qk, v, scale); });
    const auto rope_only = run([&](const QueryKey& qk, const torch::Tensor& v) {
      return naive_attention(QueryKey{qk.q, qk.k}, v, scale);
    });
    EXPECT_GT(max_abs_diff(rope_only[0], expected[0]), 1e-3) << method.scheme << ": the far passes change nothing";
    for (const int64_t block : {1, 7, 16, 1000}) {
      for (const auto& [name, kernel] : test::every_kernel()) {
        const auto got = run([&, kernel = kernel](const QueryKey& qk, const torch::Tensor& v) {
          return kernel(qk, v, AttentionCall{*scheme, positions, {}, block, scale});
        });
        const char* what[] = {"output", "grad q", "grad k", "grad v"};
        for (int n = 0; n < 4; ++n) {
          EXPECT_LT(max_abs_diff(got[n], expected[n]), 2e-5) << method.scheme << " " << name << " " << what[n]
                                                             << " block " << block;
        }
      }
    }
  }
}

// LM-Infinite: the distance clamp under its Λ mask (window L_train, a few global tokens).
TEST(MergedRope, LmInfiniteMaskWithClampMatchesTheReference) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(64);
  const int64_t T = 100, hd = 8;
  const auto q = torch::randn({2, 2, T, hd}), k = torch::randn({2, 2, T, hd}), v = torch::randn({2, 2, T, hd});
  const auto scheme = build("rerope", {{"window", kTrain}}, {16, 2, 1, kTrain});
  const auto positions = Positions::arange(T, kCpu);
  const auto qk = transform(*scheme, q, k, positions);
  const KeyMask lambda{kTrain, 3};
  const auto expected = naive_attention(qk, v, 0.35, {}, lambda);
  EXPECT_GT(max_abs_diff(expected, naive_attention(QueryKey{qk.q, qk.k}, v, 0.35, {}, lambda)), 1e-4)
      << "the clamp changes nothing under the mask";
  for (const int64_t block : {8, 64}) {
    const AttentionCall call{*scheme, positions, lambda, block, 0.35};
    EXPECT_LT(max_abs_diff(fused_causal_attention(qk, v, call), expected), 1e-5);
    EXPECT_LT(max_abs_diff(tiled_causal_attention(qk, v, call), expected), 1e-5);
    EXPECT_LT(max_abs_diff(blockwise_causal_attention(qk, v, call, 0.0, false), expected), 1e-5);
  }
}

TEST(MergedRope, ParametersThatDoNotFitAreRejected) {
  const ModelShape shape{16, 2, 1, kTrain};
  const auto message = [&](const char* scheme, const nlohmann::json& params) {
    return user_error_message([&] { build(scheme, params, shape); });
  };
  EXPECT_TRUE(contains(message("self_extend", {{"group_size", -1}}), "position.group_size: must be >= 1"));
  EXPECT_TRUE(contains(message("self_extend", {{"window", -2}}), "position.window: must be >= 0 (0 = train_length / 4)"));
  EXPECT_TRUE(contains(message("self_extend", {{"window", kTrain}}),
                       "position.window: 32 does not fit the training length 32"));
  EXPECT_TRUE(contains(message("string", {{"shift", 40}}), "position.shift: 40 does not fit the training length 32"));
  EXPECT_TRUE(contains(message("string", {{"shift", 8}, {"window", 8}}), "position.window: 8 must be below the shift 8"));
  EXPECT_TRUE(contains(message("dual_chunk", {{"chunk_size", 33}}),
                       "position.chunk_size: 33 does not fit the training length 32"));
  EXPECT_TRUE(contains(message("dual_chunk", {{"chunk_size", 8}, {"local_window", 8}}),
                       "position.local_window: 8 must be below chunk_size 8"));
  EXPECT_TRUE(contains(message("dual_chunk", {{"local_window", -1}}), "position.local_window: must be >= 0"));
  // The defaults fit: W = L/4, S = L/3 with W = L/16, s = 3L/4 with w = L/16.
  for (const char* scheme : {"self_extend", "string", "dual_chunk"}) build(scheme, nlohmann::json::object(), shape);
}

}  // namespace
}  // namespace extrap
