#pragma once
#include "position/scheme.h"

namespace extrap {

// The per-head ALiBi slopes for n_heads heads, in the reference implementation's head order.
std::vector<double> alibi_slopes(int64_t n_heads);

class Alibi : public PositionScheme {
 public:
  explicit Alibi(int64_t n_heads);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;

 private:
  torch::Tensor slopes_;
};

}  // namespace extrap
