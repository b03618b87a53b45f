#pragma once
// Helpers shared by the test files: errors, temporary directories, tensor comparisons, building
// schemes, a full-matrix attention reference and closed forms of RoPE's scores.
#include <gtest/gtest.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/attention.h"
#include "model/attention_plan.h"
#include "model/fused_attention.h"
#include "position/scheme.h"
#include "position/relative_bias.h"
#include "position/scheme_info.h"

namespace extrap {

// Defined in src/position/sinusoidal.cpp ("exposed for tests"); not declared in any header.
torch::Tensor sinusoidal_table(const torch::Tensor& positions, int64_t d_model, double base);

namespace test {

// The message of the UserError that `action` throws; fails the test if it throws none.
template <class Action>
std::string user_error_message(Action&& action) {
  try {
    action();
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UserError";
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A fresh directory per test (named after the suite, test and process), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::temp_directory_path() /
            ("extrap_test_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

inline const torch::Device kCpu(torch::kCPU);

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

inline std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous().view(-1);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// A registered scheme with `given` params over its defaults.
inline std::shared_ptr<PositionScheme> build(const std::string& name, const nlohmann::json& given,
                                             const ModelShape& shape) {
  return make_scheme(name, resolve_scheme_params(find_scheme(name), given), shape);
}

inline Positions explicit_positions(std::vector<double> values) {
  return Positions{torch::tensor(values, torch::kFloat64), false};
}

// One attention layer's model: d_model 16, 2 heads, no biases.
inline ModelConfig small_model() {
  ModelConfig m;
  m.d_model = 16;
  m.n_heads = 2;
  m.bias = false;
  return m;
}

inline QueryKey transform(PositionScheme& scheme, const torch::Tensor& q, const torch::Tensor& k,
                          const Positions& positions) {
  QueryKey qk{q, k};
  scheme.transform_qk(qk, positions);
  return qk;
}

// The reference for both attention kernels, with full [T, T] matrices: softmax(scale S + bias over
// the keys `mask` shows query i) v as [B, T, H, hd], where S_ij = q_p(i) . k_p(j) with p the pass
// qk.rule.pass(i, j) gives the pair (pass 0: q k^T). With document starts [B, T], query i of row b
// also sees only keys j >= starts[b, i]. With sink_logits [H], each head's softmax has one more
// column of that logit and no value (gpt-oss), dropped after the softmax.
inline torch::Tensor naive_attention(const QueryKey& qk, const torch::Tensor& v, double scale,
                                     const torch::Tensor& bias = {}, const KeyMask& mask = {},
                                     const torch::Tensor& starts = {}, const torch::Tensor& sink_logits = {}) {
  const int64_t length = qk.q.size(2);
  auto scores = torch::matmul(qk.q, qk.k.transpose(-2, -1));
  if (qk.rule.passes() > 1) {
    auto pass = torch::zeros({length, length}, torch::kLong);
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j) pass[i][j] = qk.rule.pass(i, j);
    for (int p = 1; p < qk.rule.passes(); ++p) {
      scores = torch::where(pass == p, torch::matmul(qk.query(p), qk.key(p).transpose(-2, -1)), scores);
    }
  }
  scores = scores * scale;
  if (bias.defined()) scores = scores + bias;
  auto visible = torch::zeros({length, length}, torch::kBool);
  for (int64_t i = 0; i < length; ++i)
    for (int64_t j = 0; j < length; ++j) visible[i][j] = mask.visible(i, j);
  auto hidden = visible.logical_not();
  if (starts.defined()) {
    hidden = hidden | (torch::arange(length).view({1, 1, 1, length}) < starts.view({starts.size(0), 1, length, 1}));
  }
  scores = scores.masked_fill(hidden, -std::numeric_limits<float>::infinity());
  if (sink_logits.defined()) {
    const auto column = sink_logits.view({1, -1, 1, 1}).expand({scores.size(0), scores.size(1), length, 1});
    return torch::matmul(torch::softmax(torch::cat({scores, column}, -1), -1).narrow(-1, 0, length), v).transpose(1, 2);
  }
  return torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2);
}

// RoPE's frequencies theta_t = base^(-2t / dims), t < dims / 2, in double.
inline std::vector<double> plain_theta(int64_t dims, double base) {
  std::vector<double> theta;
  for (int64_t t = 0; t < dims / 2; ++t) theta.push_back(std::pow(base, -2.0 * double(t) / double(dims)));
  return theta;
}

// RoPE's score q^T R_{j-i} k of raw vectors (rotate-half pairs (t, t + dims/2) over the first dims,
// the rest unrotated) at relative position rel = p_i - p_j, each pair's term times decay[t]:
// pair term = (a1 b1 + a2 b2) cos(rel theta) + (a1 b2 - a2 b1) sin(rel theta).
inline double closed_form_score(const std::vector<double>& q, const std::vector<double>& k,
                                const std::vector<double>& theta, double rel, const std::vector<double>& decay = {}) {
  const int64_t half = int64_t(theta.size()), dims = 2 * half;
  double score = 0;
  for (int64_t t = 0; t < half; ++t) {
    const double a1 = q[t], a2 = q[t + half], b1 = k[t], b2 = k[t + half];
    const double term = (a1 * b1 + a2 * b2) * std::cos(rel * theta[t]) + (a1 * b2 - a2 * b1) * std::sin(rel * theta[t]);
    score += (decay.empty() ? 1.0 : decay[t]) * term;
  }
  for (std::size_t d = dims; d < q.size(); ++d) score += q[d] * k[d];
  return score;
}

// A shipped config file, configs/NAME.
inline std::string config_path(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "configs" / name).string();
}

// Everything logged through spdlog's default logger while it lives.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~CapturedLog() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};


// Bias-scheme test helpers.

// The same positions 0..T-1, but flagged as explicit: schemes take their general path.
inline Positions explicit_arange(int64_t length) { return Positions{torch::arange(length, torch::kFloat64), false}; }

inline void set_values(torch::Tensor& param, const torch::Tensor& values) {
  torch::NoGradGuard no_grad;
  param.copy_(values.reshape(param.sizes()));
}

// [rows, keys] float: 1 where key j <= query i (the entries that matter), 0 elsewhere.
inline torch::Tensor causal_weights(const BlockRange& b) {
  auto i = torch::arange(b.q_begin, b.q_end).unsqueeze(1), j = torch::arange(b.k_begin, b.k_end).unsqueeze(0);
  return (j <= i).to(torch::kFloat32);
}


// Scheme-transformed queries and keys, and plain causal attention (scale 0.5) through either kernel.
inline void rotate(PositionScheme& scheme, torch::Tensor& q, torch::Tensor& k, const Positions& positions) {
  const QueryKey qk = transform(scheme, q, k, positions);
  q = qk.q;
  k = qk.k;
}

// Plain causal attention with scale 0.5 through either kernel.
inline torch::Tensor blockwise(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, PositionScheme& scheme,
                        const Positions& positions, int64_t block) {
  return blockwise_causal_attention(QueryKey{q, k}, v, AttentionCall{scheme, positions, {}, block, 0.5}, 0.0, false);
}
inline torch::Tensor fused(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, PositionScheme& scheme,
                    const Positions& positions, int64_t block) {
  return fused_causal_attention(QueryKey{q, k}, v, AttentionCall{scheme, positions, {}, block, 0.5});
}

}  // namespace test
}  // namespace extrap
