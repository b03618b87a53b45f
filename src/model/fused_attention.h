#pragma once
#include <torch/torch.h>

#include "position/scheme.h"

namespace extrap {

// Causal attention as one autograd function whose forward and backward loop over query blocks and,
// inside each block, run every (batch, head) pair on its own thread with single-threaded matmuls.
// Compared with stock batched ops this skips all work above the diagonal, fuses mask, bias and
// softmax in place on a cache-sized score tile, and avoids full-size temporaries (LibTorch's CPU
// bmm splits each small matmul across threads, which halves its speed here). Same inputs and output
// as blockwise_causal_attention; no attention dropout (callers use the unfused path for that).
torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     PositionScheme& scheme, const Positions& positions, int64_t block);

}  // namespace extrap
