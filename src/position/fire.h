#pragma once
#include "position/scheme.h"

namespace extrap {

// FIRE (Li et al., ICLR 2024, "Functional Interpolation for Relative Positions Improves Long Context
// Transformers"): the bias of query i and key j in head h is
//   b_h(i, j) = f_theta( psi(i - j) / (psi(max(L, i)) + eps) )_h,   psi(x) = log(|c x| + 1),
// with f_theta: R -> R^H an MLP (Linear(1, width), ReLU, Linear(width, H)), c a learnable scalar and
// L = |L_multiplier * init_L| a learnable threshold (init_L fixed, L_multiplier learnable), as in
// the paper's reference code (Appendix); eps = 1e-6. Dividing by psi(max(L, i)) ("progressive
// interpolation") maps every distance of a longer window into [0, 1]. One instance (one MLP) serves
// every layer that uses it.
class Fire : public PositionScheme {
 public:
  static constexpr double kEps = 1e-6;
  // The MLP starts with torch::nn::Linear's default (PyTorch) initialisation; c = init_c,
  // L_multiplier = 1.
  Fire(int64_t n_heads, int64_t mlp_width, double initial_c, double initial_L);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;
  // f_theta on x (float32, any shape): [H, shape...].
  torch::Tensor mlp(const torch::Tensor& x) const;
  // The same function without autograd, evaluated exactly as the piecewise-linear function it is
  // (segments between the hidden units' switching points); used at evaluation for long blocks.
  torch::Tensor mlp_piecewise(const torch::Tensor& x) const;
  // L = |L_multiplier * init_L|, [1].
  torch::Tensor threshold() const;

  torch::nn::Linear mlp_in{nullptr}, mlp_out{nullptr};
  torch::Tensor c, L_multiplier, init_L;

 private:
  int64_t n_heads_;
};

}  // namespace extrap
