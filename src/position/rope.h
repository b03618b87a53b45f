#pragma once
// RoPE building blocks, shared with tests and (later) with the inference-time RoPE variants.
#include "common/error.h"
#include "position/scheme.h"

namespace extrap {

// theta_t = base^(-2t/head_dim), t = 0..head_dim/2-1, float64.
torch::Tensor rope_inverse_frequencies(int64_t head_dim, double base, const torch::TensorOptions& options);
// Rotates x[..., T, head_dim] with the full-width tables of Rope::cos_sin: [cos, cos] and [-sin, sin].
torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

class Rope : public PositionScheme {
 public:
  Rope(int64_t head_dim, double base);
  void transform_qk(QueryKey& qk, const Positions& positions) override;
  // float32 tables [T, head_dim] for these positions: [cos, cos] and [-sin, sin] over the two halves.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const Positions& positions);

 private:
  std::pair<torch::Tensor, torch::Tensor> angles_to_cos_sin(const torch::Tensor& positions) const;
  int64_t head_dim_;
  double base_;
  torch::Tensor cos_cache_, sin_cache_;
};

}  // namespace extrap
