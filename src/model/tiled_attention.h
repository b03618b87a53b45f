#pragma once
#include <torch/torch.h>

#include "model/attention_call.h"

namespace extrap {

// Causal attention whose training memory is linear in T on any device and in any dtype, with stock
// batched tensor ops (as FlashAttention, one block of queries at a time): forward keeps each query
// row's log-sum-exp only, and backward recomputes each block's scores, bias (with its parameters'
// gradients) and probabilities. Matrix products run in call.product_dtype (accumulating in float32
// where the device does); scores, softmax statistics and gradients accumulate in float32.
// Same result as blockwise_causal_attention, no attention dropout, no host synchronisation.
// qk and v: [B, H, T, head_dim]; returns [B, T, H, head_dim] in call.product_dtype. The scheme in
// `call` must outlive the backward pass of the result.
torch::Tensor tiled_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call);

}  // namespace extrap
