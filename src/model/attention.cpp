#include "model/attention.h"

#include "model/fused_attention.h"

#include <cmath>
#include <limits>

namespace extrap {

torch::Tensor blockwise_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         PositionScheme& scheme, const Positions& positions, int64_t block,
                                         double scale, double dropout, bool training) {
  const int64_t length = q.size(2);
  const auto q_scaled = q * scale;  // scaling q is cheaper than scaling the scores
  const auto neg_inf = -std::numeric_limits<float>::infinity();
  const auto diagonal_mask =
      torch::full({block, block}, neg_inf, q.options()).triu(1);  // -inf strictly above the diagonal
  const auto keys_t = k.transpose(-2, -1);
  std::vector<torch::Tensor> outputs;
  for (int64_t q_begin = 0; q_begin < length; q_begin += block) {
    const int64_t q_end = std::min(length, q_begin + block);
    const int64_t rows = q_end - q_begin;
    // Scores against keys [0, q_end): the block row of the causal triangle.
    auto scores = torch::matmul(q_scaled.slice(2, q_begin, q_end), keys_t.slice(3, 0, q_end));  // [B, H, rows, q_end]
    scores.slice(3, q_begin, q_end).add_(diagonal_mask.slice(0, 0, rows).slice(1, 0, rows));
    auto bias = scheme.score_bias(positions, q_begin, q_end, 0, q_end);
    if (bias.defined()) scores.add_(bias);
    auto probs = torch::softmax(scores, -1);
    if (training && dropout > 0) probs = torch::dropout(probs, dropout, true);
    outputs.push_back(torch::matmul(probs, v.slice(2, 0, q_end)).transpose(1, 2));  // [B, rows, H, hd]
  }
  return outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 1);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelConfig& config, std::shared_ptr<PositionScheme> scheme)
    : n_heads_(config.n_heads), head_dim_(config.head_dim()), dropout_(config.dropout), scheme_(std::move(scheme)) {
  qkv_ = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(config.d_model, 3 * config.d_model)
                                                      .bias(config.bias)));
  proj_ = register_module("proj",
                          torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.d_model).bias(config.bias)));
}

void CausalSelfAttentionImpl::init_weights(double std, double residual_std) {
  init_linear(qkv_, std);
  init_linear(proj_, residual_std);
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, const Positions& positions) {
  const int64_t batch = x.size(0), length = x.size(1);
  // [B, T, 3, H, hd] -> three [B, H, T, hd]. unbind's backward is one stack; indexing would
  // zero-fill a full-size gradient per part.
  auto qkv = linear(x, qkv_).view({batch, length, 3, n_heads_, head_dim_}).permute({2, 0, 3, 1, 4}).unbind(0);
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  scheme_->transform_qk(q, k, positions);
  const double scale = 1.0 / std::sqrt(double(head_dim_));
  // Attention dropout needs the unfused path.
  // The fused kernel is a CPU kernel; other devices use the batched path.
  auto y = (is_training() && dropout_ > 0) || !q.is_cpu()
               ? blockwise_causal_attention(q, k, v, *scheme_, positions, block_, scale, dropout_, true)
               : fused_causal_attention(q, k, v, *scheme_, positions, block_, scale);
  y = linear(y.reshape({batch, length, n_heads_ * head_dim_}), proj_);
  return torch::dropout(y, dropout_, is_training());
}

}  // namespace extrap
