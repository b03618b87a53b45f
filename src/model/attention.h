#pragma once
#include <torch/torch.h>

#include "config/config.h"
#include "position/scheme.h"

namespace extrap {

// Causal softmax attention computed one block of queries at a time. Each query block only
// multiplies against the keys it can see (nothing above the diagonal is computed), and only the
// diagonal sub-block gets the triangular mask. The score buffer is [B, H, block, T], so memory grows
// linearly with T instead of quadratically.
// q, k, v: [B, H, T, head_dim] (q already scaled); returns [B, T, H, head_dim].
torch::Tensor blockwise_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         PositionScheme& scheme, const Positions& positions, int64_t block,
                                         double dropout, bool training);

// x @ W^T + b through at::linear, which fuses the bias into one addmm for 3-D inputs (the
// torch::nn::Linear module of LibTorch 1.13 runs a matmul and a separate add instead).
inline torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& layer) {
  return torch::linear(x, layer->weight, layer->bias);
}

// N(0, std) weights and zero biases (GPT-2 initialisation).
void init_linear(const torch::nn::Linear& layer, double std);

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
  int64_t block_ = 128;
  std::shared_ptr<PositionScheme> scheme_;  // owned by the model, shared by all layers
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace extrap
