#pragma once
// The arguments both attention kernels take besides queries, keys and values.
#include "model/attention_plan.h"
#include "position/scheme.h"

namespace extrap {

struct AttentionCall {
  PositionScheme& scheme;  // asked for score biases, one block of queries at a time
  const Positions& positions;
  KeyMask mask;
  int64_t block = 64;  // query rows per block: changes speed and memory, never results
  double scale = 1.0;  // scores are scale * q.k (+ bias)
};

}  // namespace extrap
