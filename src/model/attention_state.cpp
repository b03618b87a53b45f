#include "model/attention_state.h"

namespace extrap {

void save_attention_state(torch::autograd::AutogradContext* ctx, const AttentionState& state) {
  std::vector<torch::Tensor> saved = state.tensors;
  saved.insert(saved.end(), state.params.begin(), state.params.end());
  ctx->save_for_backward(saved);
  ctx->saved_data["own_tensors"] = int64_t(state.tensors.size());  // the parameters follow them
  ctx->saved_data["biases"] = c10::IValue::make_capsule(state.biases);
  ctx->saved_data["documents"] = c10::IValue::make_capsule(state.documents);
  ctx->saved_data["far_from"] = state.rule.far_from;
  ctx->saved_data["chunk"] = state.rule.chunk;
  ctx->saved_data["window"] = state.mask.window;
  ctx->saved_data["sinks"] = state.mask.sinks;
  ctx->saved_data["block"] = state.block;
  ctx->saved_data["scale"] = state.scale;
}

torch::Tensor AttentionState::backward_bias(const BlockPlan& plan) const {
  bool needs_graph = false;
  for (const auto& p : params) needs_graph = needs_graph || p.requires_grad();
  torch::AutoGradMode rebuild_graph(needs_graph);
  return bias_source().block_bias(plan);
}

AttentionState load_attention_state(torch::autograd::AutogradContext* ctx) {
  const auto saved = ctx->get_saved_variables();
  AttentionState state;
  state.rule = {ctx->saved_data["far_from"].toInt(), ctx->saved_data["chunk"].toInt()};
  const int64_t own = ctx->saved_data["own_tensors"].toInt();
  state.tensors.assign(saved.begin(), saved.begin() + own);
  state.params.assign(saved.begin() + own, saved.end());
  state.biases = c10::static_intrusive_pointer_cast<BiasSourceHolder>(ctx->saved_data["biases"].toCapsule());
  state.documents = c10::static_intrusive_pointer_cast<DocumentMaskHolder>(ctx->saved_data["documents"].toCapsule());
  state.mask = {ctx->saved_data["window"].toInt(), ctx->saved_data["sinks"].toInt()};
  state.block = ctx->saved_data["block"].toInt();
  state.scale = ctx->saved_data["scale"].toDouble();
  return state;
}

}  // namespace extrap
