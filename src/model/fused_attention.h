#pragma once
#include <torch/torch.h>

#include "position/scheme.h"

namespace extrap {

// Causal attention as one autograd function whose forward and backward loop over query blocks and,
// inside each block, run the (batch, head) pairs in parallel, each with single-threaded BLAS calls on
// raw pointers. Compared with stock batched ops it skips the work above the diagonal, applies scale,
// mask, bias and softmax in place on a cache-sized score tile, keeps no full-size temporaries, and
// avoids per-matrix tensor overhead (LibTorch's CPU bmm also splits each small matmul across threads,
// which halves its speed here). Same result as blockwise_causal_attention; no attention dropout
// (callers use the unfused path for that).
// q, k, v: [B, H, T, head_dim] float32 on the CPU (q unscaled; scores are scale * q.k); returns [B, T, H, head_dim].
torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     PositionScheme& scheme, const Positions& positions, int64_t block, double scale);

}  // namespace extrap
