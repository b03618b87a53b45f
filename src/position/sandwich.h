#pragma once
#include "position/scheme.h"

namespace extrap {

// Sandwich (Chi et al. 2023, "Dissecting Transformer Length Extrapolation via the Lens of Receptive
// Field Analysis"): the dot product p_i . p_j of d'-dimensional sinusoidal embeddings as a fixed bias,
//   p_i . p_j = sum_{k=1..d'/2} cos((i - j) / 10000^(2k/d')),
// shifted by -d'/2 (0 at distance 0, <= 0 elsewhere; a constant, which softmax ignores) and compressed
// per head like ALiBi: head h = 1..H is divided by 8h/H (NeMo's SandwichRelativePositionEmbedding).
// No parameters; the same bias in every layer.
class Sandwich : public PositionScheme {
 public:
  Sandwich(int64_t n_heads, int64_t dim);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;
  // The bias of distances d (float64, any shape), [H, shape...] float64, computed directly.
  torch::Tensor bias_of_distances(const torch::Tensor& distances) const;

 private:
  // [H, n] float32 bias of the distances 0..n-1 (n >= `count`), computed in float64 and grown on demand.
  const torch::Tensor& table(int64_t count, const torch::Device& device);
  int64_t n_heads_, dim_;
  torch::Tensor frequencies_;  // [d'/2] float64: 10000^(-2k/d'), k = 1..d'/2
  torch::Tensor head_scales_;  // [H] float64: H / (8h)
  torch::Tensor table_;
};

}  // namespace extrap
