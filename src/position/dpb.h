#pragma once
#include "position/scheme.h"

namespace extrap {

// Dynamic position bias (x-transformers' DynamicPositionBias, after SwinV2's log-spaced continuous
// position bias): an MLP from the distance to one bias per head,
//   bias[h, i, j] = MLP(g(d))_h,   d = max(p_i - p_j, 0),   g(d) = log(d + 1) (log_distance) or d,
//   MLP = Linear(1, W), SiLU, [Linear(W, W), SiLU] x (depth - 1), Linear(W, H).
// One instance (one MLP) serves every layer that uses it.
class DynamicPositionBias : public PositionScheme {
 public:
  // The linear layers start with torch::nn::Linear's default (PyTorch) initialisation.
  DynamicPositionBias(int64_t n_heads, int64_t width, int64_t depth, bool log_distance);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;
  // The bias of distances d (float64, d >= 0, any shape): [H, shape...] float32.
  torch::Tensor bias_of_distances(const torch::Tensor& distances) const;

  torch::nn::ModuleList mlp;  // the Linear layers, in order

 private:
  bool log_distance_;
};

}  // namespace extrap
