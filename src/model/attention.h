#pragma once
#include <torch/torch.h>

#include "config/config.h"
#include "model/linear.h"
#include "position/scheme.h"

namespace extrap {

// Causal softmax attention computed one block of queries at a time. Each query block only
// multiplies against the keys it can see (nothing above the diagonal is computed), and only the
// diagonal sub-block gets the triangular mask. The score buffer is [B, H, block, T], so memory grows
// linearly with T instead of quadratically.
// q, k, v: [B, H, T, head_dim]; scores are scale * q.k. Returns [B, T, H, head_dim].
torch::Tensor blockwise_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         PositionScheme& scheme, const Positions& positions, int64_t block,
                                         double scale, double dropout, bool training);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(const ModelConfig& config, std::shared_ptr<PositionScheme> scheme);
  torch::Tensor forward(const torch::Tensor& x, const Positions& positions);
  void set_block_size(int64_t block) { block_ = block; }
  // N(0, std) weights and zero biases; the output projection (a residual branch) gets residual_std.
  void init_weights(double std, double residual_std);

 private:
  int64_t n_heads_, head_dim_;
  double dropout_;
  int64_t block_ = 64;  // fastest for training lengths of a few hundred (bench/compare.sh)
  std::shared_ptr<PositionScheme> scheme_;  // owned by the model, shared by all layers
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace extrap
