#pragma once
// ReRoPE and Leaky ReRoPE (Su 2023, spec §3.10), and InvLeaky ReRoPE for training (§3.11).
#include "position/rope.h"

namespace extrap {

// Scores key j against query i with RoPE at relative position pos(i - j):
//   pos(r) = r                 for r < window (the near pass: plain RoPE),
//   pos(r) = window            beyond it (ReRoPE, leaky_factor 0), or
//   pos(r) = window + (r - window) / leaky_factor  (Leaky ReRoPE; 0 < leaky_factor < 1 is InvLeaky).
// The far pass is a second query/key pair: ReRoPE rotates every query by the constant position
// `window` and leaves keys unrotated; Leaky rotates queries to (p_i - window)/k + window and keys to
// p_j/k. The kernels merge the passes by token distance i - j < window (QueryKey::far_from).
class ReRope : public PositionScheme {
 public:
  ReRope(const RopeSpec& spec, int64_t window, double leaky_factor);
  void transform_qk(QueryKey& qk, const Positions& positions) override;
  int64_t window() const { return window_; }
  double leaky_factor() const { return leaky_factor_; }

 private:
  Rope rope_;
  int64_t window_;
  double leaky_factor_;
};

}  // namespace extrap
