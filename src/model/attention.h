#pragma once
#include <torch/torch.h>

#include "config/run_config.h"
#include "model/attention_call.h"
#include "model/linear.h"
#include "position/scheme.h"

namespace extrap {

// Causal softmax attention with stock batched ops, one block of queries at a time over the keys the
// block can see (attention_plan.h). The score buffer is [B, H, block, visible keys], so memory grows
// linearly with T. It supports attention dropout and any device; on the CPU without dropout the
// model uses the faster fused kernel (fused_attention.h), which computes the same thing.
// qk and v: [B, H, T, head_dim]; returns [B, T, H, head_dim].
torch::Tensor blockwise_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call,
                                         double dropout, bool training);

// Per-query factors that multiply the queries (logits) of one layer, [T] float32, or undefined when
// every factor is 1: log-n scaling (Su: log_{L_train} of the number of visible keys, floored, in
// training; max(1, log_{L_train}(i+1)) at inference, "logn†") and CosA's position-dependent log n.
torch::Tensor query_scales(const AttentionConfig& attention, int64_t length, int64_t train_length);
// The constant in front of q.k: 1/sqrt(d), 1 for QNA/KNA (the unit vector replaces it), 4 log n for CosA.
double score_scale(const AttentionConfig& attention, int64_t head_dim, int64_t train_length);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(const ModelConfig& model, const AttentionConfig& attention,
                          std::shared_ptr<PositionScheme> scheme, int64_t train_length);
  torch::Tensor forward(const torch::Tensor& x, const Positions& positions);
  void set_block_size(int64_t block) { block_ = block; }
  // N(0, std) weights and zero biases; the output projection (a residual branch) gets residual_std.
  void init_weights(double std, double residual_std);
  const PositionScheme& scheme() const { return *scheme_; }

 private:
  int64_t n_heads_, head_dim_, train_length_;
  double dropout_;
  AttentionConfig attention_;
  int64_t block_ = 64;  // fastest for training lengths of a few hundred (bench/compare.sh)
  std::shared_ptr<PositionScheme> scheme_;  // owned by the model, possibly shared with other layers
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
  torch::Tensor qk_bias_;  // [2, H, head_dim] when attention.qk_bias
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace extrap
