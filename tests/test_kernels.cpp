// The CPU attention kernel's numerics: its vectorised exp against std::exp, and defined results
// (NaN where a NaN or infinity reaches a softmax row, untouched rows elsewhere) for non-finite inputs.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "model/fused_attention.h"
#include "model/vector_exp.h"
#include "position/scheme.h"

namespace extrap {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// vector_exp over an array, as the kernel calls it (the loop the compiler vectorises).
std::vector<float> exp_of(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = vector_exp(x[i]);
  return y;
}

TEST(VectorExp, RelativeErrorAgainstStdExpOverTheNormalRange) {
  std::vector<float> x;
  for (float v = -87.33f; v <= 88.37f; v += 1e-4f) x.push_back(v);
  const auto y = exp_of(x);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double exact = std::exp(double(x[i]));
    worst = std::max(worst, std::abs(double(y[i]) - exact) / exact);
  }
  EXPECT_LT(worst, 2e-7);  // measured: 8e-8
  EXPECT_EQ(vector_exp(0.0f), 1.0f);
}

TEST(VectorExp, OutsideTheRangeAndNonFinite) {
  const auto y = exp_of({-88.0f, -1000.0f, -kInf, 88.5f, 1000.0f, kInf, kNaN, -kNaN});
  EXPECT_EQ(y[0], 0.0f);  // e^-88 = 6e-39 is subnormal: flushed
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], kInf);
  EXPECT_EQ(y[4], kInf);
  EXPECT_EQ(y[5], kInf);
  EXPECT_TRUE(std::isnan(y[6]));
  EXPECT_TRUE(std::isnan(y[7]));
}

// A scheme whose bias is -inf for key kBlockedKey and 0 elsewhere.
constexpr int64_t kBlockedKey = 3;
class BlockOneKey : public PositionScheme {
 public:
  torch::Tensor score_bias(const Positions&, int64_t q_begin, int64_t q_end, int64_t k_begin, int64_t k_end) override {
    auto bias = torch::zeros({q_end - q_begin, k_end - k_begin});
    if (k_begin <= kBlockedKey && kBlockedKey < k_end) bias.select(1, kBlockedKey - k_begin).fill_(-kInf);
    return bias;
  }
};

struct Qkv {
  torch::Tensor q, k, v;  // [B, H, T, hd]
};

constexpr int64_t kLength = 20;

Qkv random_qkv() {
  torch::manual_seed(81);
  return {torch::randn({1, 2, kLength, 8}), torch::randn({1, 2, kLength, 8}), torch::randn({1, 2, kLength, 8})};
}

// The kernel's output [B, T, H, hd], in evaluation (no gradient) or through the training path.
torch::Tensor attend(const Qkv& in, PositionScheme& scheme, int64_t block, bool training) {
  const auto positions = Positions::arange(kLength, torch::Device(torch::kCPU));
  const AttentionCall call{scheme, positions, {}, block, 0.35};
  if (!training) {
    torch::NoGradGuard no_grad;
    return fused_causal_attention({in.q, in.k}, in.v, call);
  }
  const auto q = in.q.clone().set_requires_grad(true);
  return fused_causal_attention({q, in.k}, in.v, call).detach();
}

// Rows [0, from) of head `head` are bitwise those of `clean`; rows [from, T) are all NaN.
void expect_nan_from(const torch::Tensor& out, const torch::Tensor& clean, int64_t head, int64_t from) {
  const auto rows = out.select(2, head), clean_rows = clean.select(2, head);
  EXPECT_TRUE(torch::equal(rows.narrow(1, 0, from), clean_rows.narrow(1, 0, from)));
  EXPECT_TRUE(rows.narrow(1, from, kLength - from).isnan().all().item<bool>());
}

TEST(FusedAttentionNonFinite, NanKeyMakesExactlyTheRowsThatSeeItNan) {
  PositionScheme no_bias;
  auto in = random_qkv();
  for (bool training : {false, true}) {
    for (int64_t block : {4, 64}) {
      SCOPED_TRACE(testing::Message() << "training " << training << " block " << block);
      const auto clean = attend(in, no_bias, block, training);
      Qkv poisoned{in.q, in.k.clone(), in.v};
      poisoned.k[0][0][7][3] = kNaN;
      const auto out = attend(poisoned, no_bias, block, training);
      expect_nan_from(out, clean, 0, 7);
      EXPECT_TRUE(torch::equal(out.select(2, 1), clean.select(2, 1)));  // the other head
    }
  }
}

TEST(FusedAttentionNonFinite, InfiniteQueryMakesItsRowNan) {
  PositionScheme no_bias;
  const auto in = random_qkv();
  const auto clean = attend(in, no_bias, 4, false);
  Qkv poisoned{in.q.clone(), in.k, in.v};
  poisoned.q[0][1][5][0] = kInf;  // its scores are +-inf: inf - inf = NaN in the softmax
  const auto out = attend(poisoned, no_bias, 4, false);
  const auto row = out.select(1, 5).select(1, 1);
  EXPECT_TRUE(row.isnan().all().item<bool>());
  const auto others = torch::cat({out.narrow(1, 0, 5), out.narrow(1, 6, kLength - 6)}, 1);
  const auto clean_others = torch::cat({clean.narrow(1, 0, 5), clean.narrow(1, 6, kLength - 6)}, 1);
  EXPECT_TRUE(torch::equal(others.select(2, 1), clean_others.select(2, 1)));
  EXPECT_TRUE(torch::equal(out.select(2, 0), clean.select(2, 0)));
}

TEST(FusedAttentionNonFinite, MinusInfinityBiasGivesTheKeyZeroWeight) {
  BlockOneKey scheme;
  const auto in = random_qkv();
  auto scores = torch::matmul(in.q, in.k.transpose(-2, -1)) * 0.35;
  const auto i = torch::arange(kLength).unsqueeze(1), j = torch::arange(kLength).unsqueeze(0);
  scores = scores.masked_fill((j > i).logical_or(j == kBlockedKey), -kInf);  // every row keeps key 0
  const auto reference = torch::matmul(torch::softmax(scores, -1), in.v).transpose(1, 2);
  for (int64_t block : {4, 64}) {
    const auto out = attend(in, scheme, block, false);
    EXPECT_TRUE(out.isfinite().all().item<bool>());
    EXPECT_LT((out - reference).abs().max().item<double>(), 1e-5);
  }
}

}  // namespace
}  // namespace extrap
