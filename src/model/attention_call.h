#pragma once
// The arguments both attention kernels take besides queries, keys and values.
#include "model/attention_plan.h"
#include "model/documents.h"
#include "position/scheme.h"

namespace extrap {

struct AttentionCall {
  PositionScheme& scheme;  // asked for score biases, one block of queries at a time
  const Positions& positions;
  KeyMask mask;
  int64_t block = 64;  // query rows per block: changes speed and memory, never results
  double scale = 1.0;  // scores are scale * q.k (+ bias)
  // The dtype of the tiled kernel's matrix products (bf16 under bf16 precision); other kernels
  // ignore it.
  c10::ScalarType product_dtype = c10::kFloat;
  DocumentMask documents = {};  // defined: no query sees a key of another document
  // When set, receives every query row's log-sum-exp of its logits, [B, H, T] float32, with gradients
  // (learned sink logits rescale the output by it). The SDPA path then falls back to the tiled kernel.
  torch::Tensor* log_sum_exp = nullptr;
};

}  // namespace extrap
