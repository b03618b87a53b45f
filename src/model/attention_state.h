#pragma once
// What the memory-linear attention functions (fused and tiled) keep from forward for backward,
// saved into and read from an autograd context the same way by both.
#include <torch/torch.h>

#include "model/score_tiles.h"

namespace extrap {

// Carries a call's document mask through an autograd context, as BiasSourceHolder its biases.
struct DocumentMaskHolder : torch::CustomClassHolder {
  explicit DocumentMaskHolder(DocumentMask documents) : documents(std::move(documents)) {}
  DocumentMask documents;
};

struct AttentionState {
  std::vector<torch::Tensor> tensors;  // the function's own, in its order
  std::vector<torch::Tensor> params;   // the scheme's learnable parameters (inputs of the function)
  c10::intrusive_ptr<BiasSourceHolder> biases;
  c10::intrusive_ptr<DocumentMaskHolder> documents;
  PassRule rule;  // how the function's passes merge
  KeyMask mask;
  int64_t block = 64;
  double scale = 1.0;
  const BiasSource& bias_source() const { return biases->source; }
  const DocumentMask& document_mask() const { return documents->documents; }
  std::vector<BlockPlan> plans(int64_t length) const {
    return plan_attention(length, block, mask, rule, document_mask().view());
  }
  // One block's bias asked for again in backward, with an autograd graph when a parameter needs a
  // gradient (backward itself runs with gradients off).
  torch::Tensor backward_bias(const BlockPlan& plan) const;
};

void save_attention_state(torch::autograd::AutogradContext* ctx, const AttentionState& state);
AttentionState load_attention_state(torch::autograd::AutogradContext* ctx);

}  // namespace extrap
