#pragma once
// ReRoPE and Leaky ReRoPE (Su 2023, spec §3.10), and InvLeaky ReRoPE for training (§3.11).
#include "position/merged_rope.h"

namespace extrap {

// Scores key j against query i with RoPE at relative position pos(i - j):
//   pos(r) = r                 for r < window (the near pass: plain RoPE),
//   pos(r) = window            beyond it (ReRoPE, leaky_factor 0), or
//   pos(r) = window + (r - window) / leaky_factor  (Leaky ReRoPE; 0 < leaky_factor < 1 is InvLeaky).
// The far pass rotates queries and keys to other positions: ReRoPE every query to the constant
// `window` and every key to 0; Leaky queries to (p_i - window)/k + window and keys to p_j/k.
class ReRope : public MergedRope {
 public:
  ReRope(const RopeSpec& spec, int64_t window, double leaky_factor);
  std::vector<PassPositions> pass_positions(const torch::Tensor& p) const override;
  PassRule rule() const override { return {window_, 0}; }
  int64_t window() const { return window_; }
  double leaky_factor() const { return leaky_factor_; }

 private:
  int64_t window_;
  double leaky_factor_;
};

}  // namespace extrap
