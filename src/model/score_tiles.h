#pragma once
// The score tile of one block of queries (attention_plan.h) with stock tensor ops, on any device and
// in any dtype: shared by the blockwise reference kernel and the tiled memory-linear kernel.
#include <torch/torch.h>

#include "model/attention_plan.h"
#include "model/documents.h"
#include "position/scheme.h"

namespace extrap {

// Where the score bias of each block comes from: the scheme, asked one block at a time, so that no
// kernel holds more than one block's bias. Memory-linear kernels ask again in backward (with
// gradients when the scheme has learnable parameters) instead of keeping every block's bias.
struct BiasSource {
  PositionScheme* scheme = nullptr;
  Positions positions;
  // Undefined for bias-free schemes; float32, broadcastable to [B, H, rows, columns].
  torch::Tensor block_bias(const BlockPlan& plan) const;
};

// Carries a bias source through an autograd context (saved_data holds IValues only).
struct BiasSourceHolder : torch::CustomClassHolder {
  explicit BiasSourceHolder(BiasSource source) : source(std::move(source)) {}
  BiasSource source;
};

// The scheme's parameters that require gradients: inputs of the memory-linear autograd functions,
// so that autograd routes their gradients through the recomputed biases.
std::vector<torch::Tensor> learnable_parameters(PositionScheme& scheme);

// The far passes' tensors as one list, q and k of pass 1, then of pass 2, ...: how the memory-linear
// autograd functions take them as inputs. from_tensors is the inverse.
std::vector<torch::Tensor> far_pass_tensors(const QueryKey& qk);
QueryKey from_tensors(torch::Tensor q, torch::Tensor k, at::TensorList far, const PassRule& rule);

// Whether an attention call must record a backward: gradients are on and some input or scheme
// parameter requires them.
bool needs_backward(const QueryKey& qk, const torch::Tensor& v, const std::vector<torch::Tensor>& params);

// Adds d(loss)/d(params) through one block's bias, given the gradient of its score tile
// (broadcastable to the tile; summed to the bias's shape here).
void add_bias_parameter_grads(const torch::Tensor& bias, const torch::Tensor& grad_scores,
                              const std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& param_grads);

// scale * q.k over every span of the block, each with its pass (mixed spans compute each of their
// passes and merge them by the rule): [B, H, rows, columns] in float32 (the products run in q's
// dtype). `scaled` holds queries already multiplied by the scale.
torch::Tensor block_scores(const QueryKey& scaled, const BlockPlan& plan);

// -inf where a row may not see the key of a column, 0 elsewhere: [rows, columns] with `options`,
// built on their device (no host tile copied per block); with documents [B, 1, rows, columns].
torch::Tensor mask_tile(const BlockPlan& plan, const KeyMask& mask, const torch::TensorOptions& options,
                        const DocumentMask& documents);

// Whether query i sees key j, broadcast from queries [rows, 1] and keys [1, columns] (int64).
torch::Tensor visible(const torch::Tensor& queries, const torch::Tensor& keys, const KeyMask& mask);

// Over a span's [rows, width] pairs: true where the pass is p or higher (j < boundary(i, p)).
torch::Tensor pass_at_least(const BlockPlan& plan, const KeySpan& span, const PassRule& rule, int p,
                            const torch::Device& device);
// True where a pair of a mixed span has pass p, pass <= p <= last_pass.
torch::Tensor pass_pairs(const BlockPlan& plan, const KeySpan& span, const PassRule& rule, int p,
                         const torch::Device& device);

}  // namespace extrap
