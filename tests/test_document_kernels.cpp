// Document masking in the attention kernels (data.mask_documents): plans that drop the keys no row
// can see, per-row positions in every bias scheme, and every kernel (fused, tiled in fp32 and bf16,
// blockwise) against a masked softmax over the full score matrix, outputs and gradients.
#include <gtest/gtest.h>

#include "kernel_inputs.h"
#include "test_helpers.h"

#include "model/attention.h"
#include "model/documents.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"
#include "position/alibi.h"

namespace extrap {
namespace {

using test::build;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;

constexpr int64_t kLength = 29;
constexpr int64_t kSeparator = 9;  // any id: the kernels see starts, not tokens

// Two rows of kLength tokens with end-of-text tokens at the given indices: row 0 holds short
// documents (one of a single token), row 1 two long ones; from token 21 on no row is in its first
// document, so blocks there skip keys for the whole batch.
DocumentMask two_rows_of_documents() {
  auto tokens = torch::zeros({2, kLength}, torch::kInt64);
  for (int64_t i : {3, 12, 13, 20}) tokens[0][i] = kSeparator;
  for (int64_t i : {8, 21}) tokens[1][i] = kSeparator;
  const auto starts = document_starts(tokens, kSeparator);
  return {starts, starts.contiguous()};
}

TEST(DocumentPlans, RowsSeeOnlyTheirDocumentsKeysAndBlocksDropWhatNoRowSees) {
  const auto documents = two_rows_of_documents();
  const DocumentStarts starts = documents.view();
  EXPECT_EQ(starts.floor(24), 20);  // rows 0 and 1 start their documents at 20 and 21
  EXPECT_EQ(starts.floor(4), 0);
  for (const KeyMask mask : {KeyMask{0, 0}, KeyMask{6, 0}, KeyMask{6, 3}, KeyMask{1, 2}}) {
    for (int64_t block : {1, 4, 7, 64}) {
      SCOPED_TRACE(testing::Message() << "window " << mask.window << " sinks " << mask.sinks << " block " << block);
      const auto full_plans = plan_attention(kLength, block, mask);
      const auto plans = plan_attention(kLength, block, mask, {}, starts);
      ASSERT_EQ(plans.size(), full_plans.size());
      for (std::size_t p = 0; p < plans.size(); ++p) {
        const BlockPlan& plan = plans[p];
        EXPECT_EQ(plan.columns, full_plans[p].from_key(starts.floor(plan.q_begin)).columns);
        for (int64_t b = 0; b < 2; ++b) {
          const BlockPlan row = plan.from_key(starts.row(b)[plan.q_begin]);
          for (int64_t i = plan.q_begin; i < plan.q_end; ++i) {
            const int64_t first = starts.row(b)[i];
            std::vector<bool> visible(row.columns, false);
            int64_t ranges[2][2];
            const int n = row.visible_columns(i, mask, ranges, first);
            for (int g = 0; g < n; ++g)
              for (int64_t c = ranges[g][0]; c < ranges[g][1]; ++c) visible[c] = true;
            int64_t count = 0;
            for (int64_t j = 0; j < kLength; ++j) {
              if (!mask.visible(i, j) || j < first) continue;
              const int64_t c = row.column_of(j);
              ASSERT_GE(c, 0) << "visible key " << j << " of query " << i << " row " << b << " has no column";
              EXPECT_TRUE(visible[c]) << "query " << i << " key " << j;
              ++count;
            }
            EXPECT_EQ(count, std::count(visible.begin(), visible.end(), true)) << "query " << i << " row " << b;
          }
        }
      }
    }
  }
  // Query block [24, 29): keys 0..19 are another document for every row, so they are not planned.
  const auto last = plan_attention(kLength, 8, {}, {}, starts).back();
  EXPECT_EQ(last.q_begin, 24);
  EXPECT_EQ(last.segments.front().begin, 20);
  EXPECT_EQ(last.columns, kLength - 20);
}

TEST(DocumentPlans, QueryScalesCountTheKeysOfTheDocument) {
  const auto documents = two_rows_of_documents();
  AttentionConfig attention;
  attention.logn = LognMode::kTrain;
  attention.logn_floor = 1;
  auto scales = query_scales(attention, kLength, 16, documents.view());
  ASSERT_EQ(scales.sizes(), (std::vector<int64_t>{2, kLength}));
  EXPECT_NEAR(scales[0][12].item<double>(), 0.0, 1e-7);  // a one-token document sees 1 key: log 1 = 0
  EXPECT_NEAR(scales[0][19].item<double>(), std::log(7.0) / std::log(16.0), 1e-6);  // keys 13..19
  EXPECT_NEAR(scales[1][20].item<double>(), std::log(13.0) / std::log(16.0), 1e-6);  // keys 8..20
  // Row 1's first document starts the window: its factors are those without documents.
  EXPECT_TRUE(torch::equal(scales[1].slice(0, 0, 8), query_scales(attention, kLength, 16).slice(0, 0, 8)));
  attention.window = 4;
  scales = query_scales(attention, kLength, 16, documents.view());
  EXPECT_NEAR(scales[0][14].item<double>(), std::log(2.0) / std::log(16.0), 1e-6);  // keys 13, 14: not 11, 12
  EXPECT_NEAR(scales[0][19].item<double>(), std::log(4.0) / std::log(16.0), 1e-6);  // the window's 16..19
  // logn†: the index in the document, 1 within the training length.
  attention = AttentionConfig{};
  attention.logn = LognMode::kInference;
  scales = query_scales(attention, kLength, 4, documents.view());
  EXPECT_NEAR(scales[0][19].item<double>(), std::log(7.0) / std::log(4.0), 1e-6);
  EXPECT_EQ(scales[0][14].item<float>(), 1.0f);
}

using Inputs = test::KernelInputs;
using test::detached_copy;
using test::query_key;

Inputs random_inputs(bool requires_grad) { return test::random_kernel_inputs(kLength, requires_grad); }

torch::Tensor attend(AttentionKernel kernel, const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
  if (kernel == AttentionKernel::kFusedCpu) return fused_causal_attention(qk, v, call);
  if (kernel == AttentionKernel::kTiled) return tiled_causal_attention(qk, v, call);
  return blockwise_causal_attention(qk, v, call, 0.0, false);
}

constexpr AttentionKernel kKernels[] = {AttentionKernel::kFusedCpu, AttentionKernel::kTiled, AttentionKernel::kBlockwise};

struct MaskCase {
  KeyMask mask;
  PassRule rule;
};
const MaskCase kCases[] = {{{0, 0}, {}}, {{6, 0}, {}}, {{6, 3}, {}}, {{0, 0}, {5, 0}}, {{9, 2}, {4, 0}}, {{0, 0}, {0, 5}}};

std::ostream& operator<<(std::ostream& out, const MaskCase& c) {
  return out << "window " << c.mask.window << " sinks " << c.mask.sinks << " far_from " << c.rule.far_from
             << " chunk " << c.rule.chunk;
}

// ALiBi at the rows' reset positions ([B, H, 1, keys] biases) under every mask and pass.
TEST(DocumentKernels, EveryKernelMatchesTheMaskedFullMatrixReference) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(91);
  const auto documents = two_rows_of_documents();
  const auto positions = reset_positions(Positions::arange(kLength, kCpu), documents.starts);
  Alibi alibi(3);
  const auto bias = alibi.score_bias(positions, 0, kLength, 0, kLength);
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 3, 1, kLength}));
  const auto in = random_inputs(false);
  for (const auto& c : kCases) {
    SCOPED_TRACE(testing::Message() << c);
    const auto expected = naive_attention(query_key(in, c.rule), in.v, 0.5, bias, c.mask, documents.starts);
    EXPECT_GT(max_abs_diff(expected, naive_attention(query_key(in, c.rule), in.v, 0.5, bias, c.mask)), 1e-3)
        << "the documents change nothing";
    for (int64_t block : {1, 4, 7, 100}) {
      AttentionCall call{alibi, positions, c.mask, block, 0.5};
      call.documents = documents;
      for (const auto kernel : kKernels) {
        EXPECT_LT(max_abs_diff(attend(kernel, query_key(in, c.rule), in.v, call), expected), 1e-5)
            << "kernel " << int(kernel) << " block " << block;
      }
    }
  }
}

// Every bias scheme's per-row path (reset positions), with its parameters' gradients, through the
// memory-linear kernels that recompute the biases in backward.
TEST(DocumentKernels, GradientsOfEveryBiasSchemeMatchTheMaskedReference) {
  torch::manual_seed(92);
  const ModelShape shape{24, 3, 2, 32};
  const auto documents = two_rows_of_documents();
  const auto positions = reset_positions(Positions::arange(kLength, kCpu), documents.starts);
  const auto weights = torch::randn({2, kLength, 3, 8});
  const std::pair<const char*, std::shared_ptr<PositionScheme>> schemes[] = {
      {"alibi", build("alibi", nlohmann::json::object(), shape)},
      {"t5", build("t5", {{"num_buckets", 8}, {"max_distance", 20}, {"init_std", 0.5}}, shape)},
      {"kerple", build("kerple", nlohmann::json::object(), shape)},
      {"sandwich", build("sandwich", nlohmann::json::object(), shape)},
      {"fire", build("fire", {{"init_L", 6.0}}, shape)},  // positions beyond L: the normaliser per row
      {"dpb", build("dpb", nlohmann::json::object(), shape)}};
  for (const auto& [name, scheme] : schemes) {
    const auto reference_in = random_inputs(true);
    for (auto& p : scheme->parameters()) p.mutable_grad() = torch::Tensor();
    const auto bias = scheme->score_bias(positions, 0, kLength, 0, kLength);
    ASSERT_EQ(bias.size(0), 2) << name << ": one bias per row";
    (naive_attention(query_key(reference_in, 0), reference_in.v, 0.5, bias, {}, documents.starts) * weights)
        .sum()
        .backward();
    std::vector<torch::Tensor> expected{reference_in.q.grad(), reference_in.k.grad(), reference_in.v.grad()};
    for (auto& p : scheme->parameters()) expected.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    for (const auto kernel : {AttentionKernel::kFusedCpu, AttentionKernel::kTiled}) {
      SCOPED_TRACE(testing::Message() << name << " kernel " << int(kernel));
      const auto in = detached_copy(reference_in);
      for (auto& p : scheme->parameters()) p.mutable_grad() = torch::Tensor();
      AttentionCall call{*scheme, positions, {}, 5, 0.5};
      call.documents = documents;
      (attend(kernel, query_key(in, 0), in.v, call) * weights).sum().backward();
      std::vector<torch::Tensor> got{in.q.grad(), in.k.grad(), in.v.grad()};
      for (auto& p : scheme->parameters()) got.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
      ASSERT_EQ(got.size(), expected.size());
      for (std::size_t g = 0; g < got.size(); ++g) {
        EXPECT_LT(max_abs_diff(got[g], expected[g]), 1e-5 * (1.0 + expected[g].abs().max().item<double>())) << "grad " << g;
      }
    }
  }
}

// The merged scores and a window with sinks, through both memory-linear kernels' backward.
TEST(DocumentKernels, TwoPassAndWindowGradientsMatchTheMaskedReference) {
  torch::manual_seed(93);
  const auto documents = two_rows_of_documents();
  const auto positions = Positions::arange(kLength, kCpu);
  PositionScheme no_bias;
  const auto weights = torch::randn({2, kLength, 3, 8});
  for (const auto& c : kCases) {
    for (const auto kernel : {AttentionKernel::kFusedCpu, AttentionKernel::kTiled}) {
      SCOPED_TRACE(testing::Message() << "kernel " << int(kernel) << " " << c);
      const auto in = random_inputs(true);
      const auto reference_in = detached_copy(in);
      AttentionCall call{no_bias, positions, c.mask, 4, 0.5};
      call.documents = documents;
      (attend(kernel, query_key(in, c.rule), in.v, call) * weights).sum().backward();
      (naive_attention(query_key(reference_in, c.rule), reference_in.v, 0.5, {}, c.mask, documents.starts) * weights)
          .sum()
          .backward();
      for (const auto& [got, want] : {std::pair{in.q.grad(), reference_in.q.grad()}, std::pair{in.k.grad(), reference_in.k.grad()},
                                      std::pair{in.v.grad(), reference_in.v.grad()}}) {
        EXPECT_LT(max_abs_diff(got, want), 1e-5);
      }
      for (int p = 1; p < c.rule.passes(); ++p) {
        EXPECT_LT(max_abs_diff(in.far[p - 1].q.grad(), reference_in.far[p - 1].q.grad()), 1e-5) << "pass " << p;
        EXPECT_LT(max_abs_diff(in.far[p - 1].k.grad(), reference_in.far[p - 1].k.grad()), 1e-5) << "pass " << p;
      }
    }
  }
}

// bf16 products with documents: outputs and gradients within bf16 rounding of the fp32 reference.
TEST(DocumentKernels, TiledBf16FollowsTheDocuments) {
  torch::manual_seed(94);
  const auto documents = two_rows_of_documents();
  const auto positions = Positions::arange(kLength, kCpu);
  PositionScheme no_bias;
  const auto weights = torch::randn({2, kLength, 3, 8});
  const auto in = random_inputs(true);
  const auto reference_in = detached_copy(in);
  AttentionCall call{no_bias, positions, {}, 8, 0.5};
  call.documents = documents;
  call.product_dtype = torch::kBFloat16;
  const auto out = tiled_causal_attention(query_key(in, 0), in.v, call);
  (out.to(torch::kFloat32) * weights).sum().backward();
  const auto expected = naive_attention(query_key(reference_in, 0), reference_in.v, 0.5, {}, {}, documents.starts);
  (expected * weights).sum().backward();
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat32) - b).norm().item<double>() / b.norm().item<double>();
  };
  EXPECT_LT(relative(out, expected), 2e-2);
  // The unmasked attention is far from it: the tolerance above could tell.
  EXPECT_GT(relative(naive_attention(query_key(reference_in, 0), reference_in.v, 0.5), expected.detach()), 0.1);
  for (const auto& [got, want] : {std::pair{in.q.grad(), reference_in.q.grad()}, std::pair{in.k.grad(), reference_in.k.grad()},
                                  std::pair{in.v.grad(), reference_in.v.grad()}}) {
    EXPECT_LT(relative(got, want), 3e-2);
  }
}

}  // namespace
}  // namespace extrap
