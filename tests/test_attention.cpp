// The attention kernels' masks (window, sinks), two-pass scores, per-query scales and the
// attention modifiers, each against a plain full-matrix reference.
#include <cmath>

#include <gtest/gtest.h>

#include "kernel_inputs.h"
#include "test_helpers.h"

#include "model/attention.h"
#include "model/attention_plan.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"
#include "position/alibi.h"
#include "position/sampling.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;

// ---- Plans ------------------------------------------------------------------------------------

TEST(AttentionPlan, VisibleColumnsAreExactlyTheVisibleKeys) {
  for (const KeyMask mask : {KeyMask{0, 0}, KeyMask{5, 0}, KeyMask{5, 3}, KeyMask{1, 2}, KeyMask{8, 8}}) {
    for (int64_t block : {1, 4, 7, 64}) {
      for (const PassRule rule : {PassRule{0, 0}, PassRule{3, 0}, PassRule{0, 5}}) {
        SCOPED_TRACE(testing::Message() << "window " << mask.window << " sinks " << mask.sinks << " block " << block
                                        << " far_from " << rule.far_from << " chunk " << rule.chunk);
        for (const auto& plan : plan_attention(37, block, mask, rule)) {
          // Spans tile the segments exactly, in column order, and bound the pass of every pair.
          int64_t column = 0;
          for (const auto& span : plan.spans) {
            EXPECT_EQ(span.column, column);
            column += span.end - span.begin;
            if (rule.far_from > 0 && span.mixed()) EXPECT_LT(span.end - span.begin, plan.rows());
            for (int64_t i = plan.q_begin; i < plan.q_end; ++i) {
              for (int64_t j = span.begin; j < span.end; ++j) {
                EXPECT_GE(rule.pass(i, j), span.pass) << "query " << i << " key " << j;
                EXPECT_LE(rule.pass(i, j), span.last_pass) << "query " << i << " key " << j;
              }
            }
          }
          EXPECT_EQ(column, plan.columns);
          for (int64_t i = plan.q_begin; i < plan.q_end; ++i) {
            std::vector<bool> visible(plan.columns, false);
            int64_t ranges[2][2];
            const int n = plan.visible_columns(i, mask, ranges);
            for (int g = 0; g < n; ++g)
              for (int64_t c = ranges[g][0]; c < ranges[g][1]; ++c) visible[c] = true;
            int64_t count = 0;
            for (int64_t j = 0; j < 37; ++j) {
              const int64_t c = plan.column_of(j);
              if (mask.visible(i, j)) {
                ASSERT_GE(c, 0) << "visible key " << j << " of query " << i << " has no column";
                EXPECT_TRUE(visible[c]) << "query " << i << " key " << j;
                ++count;
              }
            }
            EXPECT_EQ(count, std::count(visible.begin(), visible.end(), true)) << "query " << i;
          }
        }
      }
    }
  }
}

TEST(AttentionPlan, WindowBlocksComputeOnlyTheirBand) {
  // Query block [64, 128) with window 16 needs keys [49, 128) only; sinks add [0, 4).
  const auto plans = plan_attention(128, 64, KeyMask{16, 4});
  ASSERT_EQ(plans.size(), 2u);
  ASSERT_EQ(plans[1].segments.size(), 2u);
  EXPECT_EQ(plans[1].segments[0].begin, 0);
  EXPECT_EQ(plans[1].segments[0].end, 4);
  EXPECT_EQ(plans[1].segments[1].begin, 49);
  EXPECT_EQ(plans[1].segments[1].end, 128);
  EXPECT_EQ(plans[1].columns, 4 + 79);
}

// ---- Kernels against a full-matrix reference --------------------------------------------------

using Inputs = test::KernelInputs;
using test::detached_copy;
using test::query_key;

Inputs random_inputs(int64_t length, bool requires_grad) { return test::random_kernel_inputs(length, requires_grad); }

struct KernelCase {
  KeyMask mask;
  PassRule rule;
};

// Single pass, two passes by distance, three by chunk (blocks of 5 and 7 rows straddle chunks of 6).
const KernelCase kCases[] = {{{0, 0}, {}},     {{6, 0}, {}},     {{6, 3}, {}},    {{1, 0}, {}},   {{0, 0}, {5, 0}},
                             {{9, 2}, {4, 0}}, {{0, 0}, {1, 0}}, {{0, 0}, {0, 6}}, {{9, 2}, {0, 4}}, {{0, 0}, {0, 1}}};

std::ostream& operator<<(std::ostream& out, const KernelCase& c) {
  return out << "window " << c.mask.window << " sinks " << c.mask.sinks << " far_from " << c.rule.far_from
             << " chunk " << c.rule.chunk;
}

TEST(AttentionKernels, MasksAndTwoPassScoresMatchTheFullMatrixReference) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(51);
  const int64_t length = 29;
  const auto positions = Positions::arange(length, kCpu);
  Alibi alibi(3);
  const auto in = random_inputs(length, false);
  const auto bias = alibi.score_bias(positions, 0, length, 0, length);
  const auto reference_of = [&](const PassRule& rule, const KeyMask& mask) {
    return naive_attention(query_key(in, rule), in.v, 0.5, bias, mask);
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(testing::Message() << c);
    const auto reference = reference_of(c.rule, c.mask);
    for (int64_t block : {1, 4, 7, 100}) {
      SCOPED_TRACE(block);
      const AttentionCall call{alibi, positions, c.mask, block, 0.5};
      EXPECT_LT(max_abs_diff(blockwise_causal_attention(query_key(in, c.rule), in.v, call, 0.0, false), reference),
                1e-5);
      EXPECT_LT(max_abs_diff(fused_causal_attention(query_key(in, c.rule), in.v, call), reference), 1e-5);
      EXPECT_LT(max_abs_diff(tiled_causal_attention(query_key(in, c.rule), in.v, call), reference), 1e-5);
    }
  }
  // The cases differ from each other: the masks and the far pass really change the result.
  const auto full = reference_of({}, {});
  EXPECT_GT(max_abs_diff(reference_of({}, {6, 0}), full), 1e-3);
  EXPECT_GT(max_abs_diff(reference_of({}, {6, 3}), reference_of({}, {6, 0})), 1e-3);
  EXPECT_GT(max_abs_diff(reference_of({5, 0}, {}), full), 1e-3);
  const auto chunked = reference_of({0, 6}, {});
  EXPECT_GT(max_abs_diff(chunked, full), 1e-3);
  // Every chunk pass matters: the third pair changes rows two chunks on, the second the rows after one.
  auto no_third = query_key(in, PassRule{0, 6});
  no_third.far_passes[1] = no_third.far_passes[0];
  EXPECT_GT(max_abs_diff(naive_attention(no_third, in.v, 0.5, bias), chunked), 1e-3);
}

TEST(AttentionKernels, MemoryLinearKernelsGradientsMatchTheReference) {
  torch::manual_seed(52);
  const int64_t length = 23;
  const auto positions = Positions::arange(length, kCpu);
  Alibi alibi(3);
  const auto weights = torch::randn({2, length, 3, 8});
  using Kernel = torch::Tensor (*)(const QueryKey&, const torch::Tensor&, const AttentionCall&);
  const std::pair<const char*, Kernel> kernels[] = {{"fused", fused_causal_attention}, {"tiled", tiled_causal_attention}};
  for (const auto& c : kCases) {
    for (const auto& [name, kernel] : kernels) {
      SCOPED_TRACE(testing::Message() << name << " " << c);
      const auto kernel_in = random_inputs(length, true);
      const auto reference_in = detached_copy(kernel_in);
      const AttentionCall call{alibi, positions, c.mask, 5, 0.5};
      (kernel(query_key(kernel_in, c.rule), kernel_in.v, call) * weights).sum().backward();
      const auto bias = alibi.score_bias(positions, 0, length, 0, length);
      (naive_attention(query_key(reference_in, c.rule), reference_in.v, 0.5, bias, c.mask) * weights).sum().backward();
      EXPECT_LT(max_abs_diff(kernel_in.q.grad(), reference_in.q.grad()), 1e-5);
      EXPECT_LT(max_abs_diff(kernel_in.k.grad(), reference_in.k.grad()), 1e-5);
      EXPECT_LT(max_abs_diff(kernel_in.v.grad(), reference_in.v.grad()), 1e-5);
      for (int p = 1; p < c.rule.passes(); ++p) {
        const auto &got = kernel_in.far[p - 1], &expected = reference_in.far[p - 1];
        EXPECT_LT(max_abs_diff(got.q.grad(), expected.q.grad()), 1e-5) << "pass " << p;
        EXPECT_LT(max_abs_diff(got.k.grad(), expected.k.grad()), 1e-5) << "pass " << p;
        EXPECT_GT(got.k.grad().abs().max().item<double>(), 1e-3) << "pass " << p;
      }
    }
  }
}

// bf16 products (what --precision bf16 runs on the CPU) stay within bf16 rounding of the float32
// reference, outputs and gradients, with softmax statistics in float32.
TEST(AttentionKernels, TiledBf16ProductsStayCloseToFloat32) {
  torch::manual_seed(53);
  const int64_t length = 40;
  const auto positions = Positions::arange(length, kCpu);
  Alibi alibi(3);
  const auto weights = torch::randn({2, length, 3, 8});
  const auto bf16_in = random_inputs(length, true);
  const auto reference_in = detached_copy(bf16_in);
  AttentionCall call{alibi, positions, {}, 16, 0.5};
  call.product_dtype = torch::kBFloat16;
  const auto out = tiled_causal_attention(query_key(bf16_in, 0), bf16_in.v, call);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  (out.to(torch::kFloat32) * weights).sum().backward();
  const auto bias = alibi.score_bias(positions, 0, length, 0, length);
  const auto reference = naive_attention(query_key(reference_in, 0), reference_in.v, 0.5, bias, {});
  (reference * weights).sum().backward();
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat32) - b).norm().item<double>() / b.norm().item<double>();
  };
  EXPECT_LT(relative(out, reference), 2e-2);
  for (const auto& [got, want] : {std::pair{bf16_in.q.grad(), reference_in.q.grad()},
                                  std::pair{bf16_in.k.grad(), reference_in.k.grad()},
                                  std::pair{bf16_in.v.grad(), reference_in.v.grad()}}) {
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    EXPECT_LT(relative(got, want), 3e-2);
  }
}

// ---- Query scales and score scales ------------------------------------------------------------

TEST(QueryScales, LogNFollowsSuDefinitions) {
  AttentionConfig attention;
  EXPECT_FALSE(query_scales(attention, 10, 64).defined());
  // Training (bert4keras softmax_plus): log(max(visible keys, 16)) / log(L_train).
  attention.logn = LognMode::kTrain;
  auto scales = query_scales(attention, 200, 64);
  EXPECT_NEAR(scales[0].item<double>(), std::log(16.0) / std::log(64.0), 1e-6);
  EXPECT_NEAR(scales[15].item<double>(), std::log(16.0) / std::log(64.0), 1e-6);
  EXPECT_NEAR(scales[63].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(scales[199].item<double>(), std::log(200.0) / std::log(64.0), 1e-6);
  // With a window the count of visible keys stops growing at the window (plus sinks).
  attention.window = 32;
  attention.sinks = 4;
  scales = query_scales(attention, 200, 64);
  EXPECT_NEAR(scales[31].item<double>(), std::log(32.0) / std::log(64.0), 1e-6);
  EXPECT_NEAR(scales[199].item<double>(), std::log(36.0) / std::log(64.0), 1e-6);
  // Inference (logn†): max(1, log(i + 1) / log(L_train)); exactly 1 within the training length.
  attention = AttentionConfig{};
  attention.logn = LognMode::kInference;
  scales = query_scales(attention, 512, 64);
  for (int64_t i = 0; i < 64; ++i) ASSERT_EQ(scales[i].item<float>(), 1.0f) << i;
  EXPECT_NEAR(scales[511].item<double>(), std::log(512.0) / std::log(64.0), 1e-6);
}

TEST(QueryScales, ScoreScaleOfEachNormalisation) {
  AttentionConfig attention;
  EXPECT_DOUBLE_EQ(score_scale(attention, 16, 128), 0.25);
  attention.qk_norm = QkNorm::kKey;
  EXPECT_DOUBLE_EQ(score_scale(attention, 16, 128), 1.0);
  attention.qk_norm = QkNorm::kCosine;
  EXPECT_NEAR(score_scale(attention, 16, 128), 4.0 * std::log(64.0), 1e-12);  // 4 log(L_train / 2)
  attention.cosine_scale = CosineScale::kPosition;
  EXPECT_DOUBLE_EQ(score_scale(attention, 16, 128), 1.0);
  EXPECT_NEAR(query_scales(attention, 10, 128)[9].item<double>(), 4.0 * std::log(10.0), 1e-5);
}

// ---- Attention modifiers in the layer ---------------------------------------------------------

using test::small_model;

torch::Tensor layer_output(CausalSelfAttention& layer, const torch::Tensor& x) {
  return layer->forward(x, Positions::arange(x.size(1), kCpu));
}

// Multiplies every key by `factor` through the key rows of the qkv projection.
void scale_keys(CausalSelfAttention& layer, double factor) {
  torch::NoGradGuard no_grad;
  for (auto& p : layer->named_parameters()) {
    if (p.key() == "qkv.weight") p.value().slice(0, 16, 32).mul_(factor);
  }
}

TEST(AttentionModifiers, KeyNormScoresIgnoreKeyScale) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(61);
  const auto x = torch::randn({2, 12, 16});
  auto nope = make_scheme("nope", nlohmann::json::object(), {16, 2, 1, 12});
  AttentionConfig kna;
  kna.qk_norm = QkNorm::kKey;
  for (const bool normalised : {true, false}) {
    SCOPED_TRACE(normalised ? "KNA" : "plain");
    torch::manual_seed(62);
    CausalSelfAttention layer(small_model(), normalised ? kna : AttentionConfig{}, nope, 12);
    const auto before = layer_output(layer, x);
    scale_keys(layer, 3.0);
    const double change = max_abs_diff(before, layer_output(layer, x));
    if (normalised) {
      EXPECT_LT(change, 1e-5);
    }
    else EXPECT_GT(change, 1e-3);  // without KeyNorm the key scale sharpens the softmax
  }
}

TEST(AttentionModifiers, WindowLayerIgnoresTokensOutsideTheWindow) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(63);
  auto nope = make_scheme("nope", nlohmann::json::object(), {16, 2, 1, 20});
  AttentionConfig window;
  window.window = 4;
  window.sinks = 2;
  CausalSelfAttention layer(small_model(), window, nope, 20);
  const auto x = torch::randn({1, 20, 16});
  auto edited = x.clone();
  edited[0][5] += 1.0;  // token 5: seen by queries 5..8 only (sinks are tokens 0 and 1)
  const auto a = layer_output(layer, x), b = layer_output(layer, edited);
  EXPECT_GT(max_abs_diff(a.slice(1, 5, 9), b.slice(1, 5, 9)), 1e-4);
  EXPECT_LT(max_abs_diff(a.slice(1, 9, 20), b.slice(1, 9, 20)), 1e-7);
  edited = x.clone();
  edited[0][1] += 1.0;  // a sink: seen by every later query
  EXPECT_GT(max_abs_diff(layer_output(layer, edited).slice(1, 19, 20), a.slice(1, 19, 20)), 1e-4);
}

// ---- Position sampling ------------------------------------------------------------------------

TEST(PositionSampling, RuossPositionsAreSortedDistinctAndInRange) {
  PositionSampling sampling;
  sampling.train = TrainPositions::kRandom;
  sampling.range = 512;
  double mean_last = 0;
  for (int64_t step = 0; step < 200; ++step) {
    const auto p = training_positions(sampling, 64, 7, step, kCpu);
    EXPECT_FALSE(p.is_arange);
    const auto v = p.values;
    ASSERT_EQ(v.size(0), 64);
    EXPECT_GE(v.min().item<double>(), 0.0);
    EXPECT_LT(v.max().item<double>(), 512.0);
    EXPECT_TRUE((v.slice(0, 1) > v.slice(0, 0, 63)).all().item<bool>()) << "not strictly increasing at step " << step;
    EXPECT_TRUE(torch::equal(v, v.round())) << "not integers";
    mean_last += v[63].item<double>() / 200;
  }
  // The largest of 64 draws from 512 has expectation 64/65 * 512 ~ 504.
  EXPECT_NEAR(mean_last, 504.1, 6.0);
  // Reproducible from (seed, step); different across steps.
  EXPECT_TRUE(torch::equal(training_positions(sampling, 64, 7, 3, kCpu).values,
                           training_positions(sampling, 64, 7, 3, kCpu).values));
  EXPECT_FALSE(torch::equal(training_positions(sampling, 64, 7, 3, kCpu).values,
                            training_positions(sampling, 64, 7, 4, kCpu).values));
}

TEST(PositionSampling, EqualMeanPositionsHaveUnitMeanSpacing) {
  PositionSampling sampling;
  sampling.train = TrainPositions::kEqualMean;
  const int64_t length = 64, steps = 4000;
  double spacing = 0, spacing_sq = 0;
  int64_t beyond_3t = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const auto v = training_positions(sampling, length, 11, step, kCpu).values;
    EXPECT_EQ(v[0].item<double>(), 0.0);
    const auto gaps = v.slice(0, 1) - v.slice(0, 0, length - 1);
    EXPECT_LT((gaps - gaps[0]).abs().max().item<double>(), 1e-9) << "not evenly spaced";
    spacing += gaps[0].item<double>() / steps;
    spacing_sq += gaps[0].item<double>() * gaps[0].item<double>() / steps;
    beyond_3t += v[length - 1].item<double>() > 3.0 * length;
  }
  // n ~ Exponential(mean T) spread over T - 1 gaps: mean spacing T / (T - 1); the standard error
  // of the mean over 4000 draws is about 1.6%.
  EXPECT_NEAR(spacing, double(length) / double(length - 1), 0.06);
  // Exponential, not merely mean T: its standard deviation equals its mean, and P(n > 3T) = e^-3
  // (5.0%; a constant or a Poisson length would give 0).
  EXPECT_NEAR(std::sqrt(spacing_sq - spacing * spacing) / spacing, 1.0, 0.08);
  EXPECT_NEAR(double(beyond_3t) / steps, std::exp(-3.0), 0.012);
}

TEST(PositionSampling, SpreadEvaluationPositions) {
  PositionSampling sampling;
  sampling.eval = EvalPositions::kSpread;
  sampling.range = 1024;
  const auto v = evaluation_positions(sampling, 256, kCpu).values;
  EXPECT_DOUBLE_EQ(v[0].item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(v[1].item<double>(), 4.0);
  EXPECT_DOUBLE_EQ(v[255].item<double>(), 1020.0);
  sampling.eval = EvalPositions::kOrdinary;
  EXPECT_TRUE(evaluation_positions(sampling, 5, kCpu).is_arange);
}

}  // namespace
}  // namespace extrap
