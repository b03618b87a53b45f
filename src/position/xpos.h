#pragma once
// xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer"; spec §3.4): RoPE plus an exponential
// decay of the scores with distance, as in microsoft/torchscale's XPOS module.
#include "position/rope.h"

namespace extrap {

// Per pair t = 0..d/2-1: zeta_t = (2t/d + 0.4) / 1.4, float64.
torch::Tensor xpos_zeta(int64_t head_dim);
// The longest window of consecutive positions whose scales zeta^(+-power) stay inside float32's
// normal range with headroom (|power| * ln(1/zeta_0) <= kXposMaxLogScale).
int64_t xpos_max_length(double scale_base);
constexpr double kXposMaxLogScale = 85.0;  // e^85 ~ 8e36 < FLT_MAX 3.4e38; e^-85 ~ 1.2e-37 > FLT_MIN 1.2e-38

// q_i -> R_i q_i * zeta^((p_i - c)/scale_base), k_j -> R_j k_j * zeta^(-(p_j - c)/scale_base), so the
// score is RoPE's times zeta_t^((p_i - p_j)/scale_base) per pair: a decay for i > j. c centres the
// window's positions (ceil(T/2) for 0..T-1, as torchscale does) so that neither factor overflows;
// it cancels in every score.
class XPos : public PositionScheme {
 public:
  XPos(int64_t head_dim, double base, double scale_base);
  void transform_qk(QueryKey& qk, const Positions& positions) override;
  // float32 tables [T, head_dim] like Rope::cos_sin with the decay folded in: query tables (scale
  // zeta^power) and key tables (zeta^-power). Order: cos_q, sin_q, cos_k, sin_k.
  std::vector<torch::Tensor> tables(const Positions& positions) const;

 private:
  int64_t head_dim_;
  double scale_base_;
  torch::Tensor inv_freq_, log_zeta_;  // float64 [d/2]
  std::vector<torch::Tensor> cache_;   // tables of the last 0..T-1 window
};

}  // namespace extrap
