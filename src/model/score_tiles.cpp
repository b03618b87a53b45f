#include "model/score_tiles.h"

#include <limits>

namespace extrap {

torch::Tensor BiasSource::block_bias(const BlockPlan& plan) const {
  std::vector<torch::Tensor> parts;
  for (const auto& seg : plan.segments) {
    auto part = scheme->score_bias(positions, plan.q_begin, plan.q_end, seg.begin, seg.end);
    if (!part.defined()) return {};  // a scheme has a bias for every block or for none
    parts.push_back(part.to(torch::kFloat32));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, -1);
}

std::vector<torch::Tensor> learnable_parameters(PositionScheme& scheme) {
  std::vector<torch::Tensor> params;
  for (const auto& p : scheme.parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  return params;
}

bool needs_backward(const QueryKey& qk, const torch::Tensor& v, const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return false;
  bool needs = !params.empty();
  for (const auto* t : {&qk.q, &qk.k, &v, &qk.q_far, &qk.k_far}) needs = needs || (t->defined() && t->requires_grad());
  return needs;
}

void add_bias_parameter_grads(const torch::Tensor& bias, const torch::Tensor& grad_scores,
                              const std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& param_grads) {
  const auto grads = torch::autograd::grad({bias}, params, {at::sum_to(grad_scores, bias.sizes())},
                                           /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
  for (std::size_t p = 0; p < params.size(); ++p) {
    if (!grads[p].defined()) continue;
    param_grads[p] = param_grads[p].defined() ? param_grads[p] + grads[p] : grads[p];
  }
}

torch::Tensor near_pairs(const BlockPlan& plan, const KeySpan& span, int64_t far_from, const torch::Device& device) {
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto distance = torch::arange(plan.q_begin, plan.q_end, options).unsqueeze(1) -
                        torch::arange(span.begin, span.end, options).unsqueeze(0);
  return distance < far_from;
}

torch::Tensor block_scores(const QueryKey& scaled, const BlockPlan& plan) {
  const auto rows = [&](const torch::Tensor& q) { return q.slice(2, plan.q_begin, plan.q_end); };
  std::vector<torch::Tensor> parts;
  for (const auto& span : plan.spans) {
    const auto keys = [&](const torch::Tensor& k) { return k.slice(2, span.begin, span.end).transpose(-2, -1); };
    const auto near = [&] { return torch::matmul(rows(scaled.q), keys(scaled.k)).to(torch::kFloat32); };
    const auto far = [&] { return torch::matmul(rows(scaled.q_far), keys(scaled.k_far)).to(torch::kFloat32); };
    if (span.pass == Pass::kNear) {
      parts.push_back(near());
    } else if (span.pass == Pass::kFar) {
      parts.push_back(far());
    } else {
      parts.push_back(torch::where(near_pairs(plan, span, scaled.far_from, scaled.q.device()), near(), far()));
    }
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, -1);
}

torch::Tensor visible(const torch::Tensor& queries, const torch::Tensor& keys, const KeyMask& mask) {
  auto seen = keys <= queries;
  if (mask.window > 0) seen = seen & ((queries - keys < mask.window) | (keys < mask.sinks));
  return seen;
}

torch::Tensor mask_tile(const BlockPlan& plan, const KeyMask& mask, const torch::TensorOptions& options,
                        const DocumentMask& documents) {
  const auto index = options.dtype(torch::kLong);
  std::vector<torch::Tensor> keys;  // the key of each column: the segments' keys concatenated
  for (const auto& seg : plan.segments) keys.push_back(torch::arange(seg.begin, seg.end, index));
  const auto columns = keys.size() == 1 ? keys[0] : torch::cat(keys);
  auto seen = visible(torch::arange(plan.q_begin, plan.q_end, index).unsqueeze(1), columns.unsqueeze(0), mask);
  if (documents.defined()) {  // and the key is in the query's document: [B, rows, columns]
    seen = (seen & (columns >= documents.starts.slice(1, plan.q_begin, plan.q_end).unsqueeze(-1))).unsqueeze(1);
  }
  return torch::zeros(seen.sizes(), options).masked_fill(seen.logical_not(), -std::numeric_limits<float>::infinity());
}

}  // namespace extrap
