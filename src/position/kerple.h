#pragma once
#include "position/scheme.h"

namespace extrap {

// KERPLE (Chi et al. 2022): a learnable per-head kernel of the distance d = i - j >= 0,
//   log:    bias = -r1 * log(1 + r2 * d)     r1, r2 > 0
//   power:  bias = -r1 * d^r2                r1 > 0, 0 < r2 <= 2
// The constraints are kept by projection, as in the reference code: before every use the stored
// parameters are clamped in place to [kEps, inf) (r2 of power: [kEps, 2]). Gradients are those of
// the unconstrained formula at the projected point, so a parameter held at a bound moves back as
// soon as its gradient points inward (projected gradient descent). One instance serves every layer
// that uses it.
class Kerple : public PositionScheme {
 public:
  enum class Variant { kLog, kPower };
  static constexpr double kEps = 0.01;  // the reference code's lower bound

  // Reference initialisation (chijames/KERPLE, ParallelKerpleLog / ParallelKerplePower), per head:
  //   log:   r1 ~ U(0, 2) (their bias_p), r2 ~ U(0, 1) (bias_a)
  //   power: r1 ~ U(0, 1) (their bias_a), r2 ~ U(0, 2) (bias_p)
  // drawn in that order (r1 of log first, r2 of power first, as the reference draws bias_p first).
  Kerple(int64_t n_heads, Variant variant);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;
  // The per-head bias of distances d (float64, any shape, d >= 0), [H, shape...] float32.
  torch::Tensor kernel(const torch::Tensor& distances);
  // Clamps the stored parameters into the constraint set (after every optimizer step, and at the
  // start of each score_bias call for parameters changed any other way).
  void project();
  void after_optimizer_step() override { project(); }
  Variant variant() const { return variant_; }
  torch::Tensor& r1() { return r1_; }
  torch::Tensor& r2() { return r2_; }

 private:
  Variant variant_;
  torch::Tensor r1_, r2_;  // parameters [H]
};

}  // namespace extrap
