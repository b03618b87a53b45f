#pragma once
#include <torch/torch.h>

#include "model/attention_call.h"

namespace extrap {

// Causal attention as one autograd function whose forward and backward loop over query blocks and,
// inside each block, run the (batch, head) pairs in parallel, each with single-threaded BLAS calls on
// raw pointers. Compared with stock batched ops it computes only the keys a block can see (see
// attention_plan.h), applies scale, mask, bias and softmax in place on a cache-sized score tile,
// keeps no full-size temporaries, and avoids per-matrix tensor overhead (LibTorch's CPU bmm also
// splits each small matmul across threads, which halves its speed here). Training memory is linear
// in T: forward keeps each query row's log-sum-exp only, and backward recomputes each block's
// scores, biases (with their parameters' gradients) and probabilities, as FlashAttention does.
// Same result as blockwise_causal_attention; no attention dropout (callers use the unfused path for
// that). qk and v: [B, H, T, head_dim] float32 on the CPU; returns [B, T, H, head_dim]. The scheme
// in `call` must outlive the backward pass of the result (backward asks it for the biases again).
torch::Tensor fused_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call);

}  // namespace extrap
