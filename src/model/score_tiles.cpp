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

std::vector<torch::Tensor> far_pass_tensors(const QueryKey& qk) {
  std::vector<torch::Tensor> tensors;
  for (const auto& pair : qk.far_passes) tensors.insert(tensors.end(), {pair.q, pair.k});
  return tensors;
}

QueryKey from_tensors(torch::Tensor q, torch::Tensor k, at::TensorList far, const PassRule& rule) {
  QueryKey qk{std::move(q), std::move(k)};
  for (std::size_t t = 0; t + 1 < far.size(); t += 2) qk.far_passes.push_back({far[t], far[t + 1]});
  qk.rule = rule;
  return qk;
}

bool needs_backward(const QueryKey& qk, const torch::Tensor& v, const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return false;
  bool needs = !params.empty();
  for (const auto* t : {&qk.q, &qk.k, &v}) needs = needs || t->requires_grad();
  for (const auto& pair : qk.far_passes) needs = needs || pair.q.requires_grad() || pair.k.requires_grad();
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

torch::Tensor pass_at_least(const BlockPlan& plan, const KeySpan& span, const PassRule& rule, int p,
                            const torch::Device& device) {
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto rows = torch::arange(plan.q_begin, plan.q_end, options);
  // PassRule::boundary for every row at once, on the device.
  const auto boundary = rule.chunk > 0 ? (at::div(rows, rule.chunk, "floor") - (p - 1)) * rule.chunk
                                       : rows - (rule.far_from - 1);
  return torch::arange(span.begin, span.end, options).unsqueeze(0) < boundary.unsqueeze(1);
}

torch::Tensor pass_pairs(const BlockPlan& plan, const KeySpan& span, const PassRule& rule, int p,
                         const torch::Device& device) {
  auto pairs = p > span.pass ? pass_at_least(plan, span, rule, p, device) : torch::Tensor();
  if (p < span.last_pass) {
    const auto higher = pass_at_least(plan, span, rule, p + 1, device).logical_not();
    pairs = pairs.defined() ? pairs & higher : higher;
  }
  return pairs;
}

torch::Tensor block_scores(const QueryKey& scaled, const BlockPlan& plan) {
  const auto rows = scaled.q.slice(2, plan.q_begin, plan.q_end);
  const auto pass_scores = [&](int p, const KeySpan& span) {  // in the product dtype
    const auto q = p == 0 ? rows : scaled.query(p).slice(2, plan.q_begin, plan.q_end);
    return torch::matmul(q, scaled.key(p).slice(2, span.begin, span.end).transpose(-2, -1));
  };
  if (plan.spans.size() == 1 && !plan.spans[0].mixed()) return pass_scores(plan.spans[0].pass, plan.spans[0]).to(torch::kFloat32);
  // Each span's products land in their columns of one float32 tile: the cast and the placement are
  // one pass over the tile, where casting parts and concatenating them would be two.
  auto tile = torch::empty({rows.size(0), rows.size(1), plan.rows(), plan.columns}, rows.options().dtype(torch::kFloat32));
  for (const auto& span : plan.spans) {
    auto columns = tile.narrow(-1, span.column, span.end - span.begin);
    columns.copy_(pass_scores(span.pass, span));
    for (int p = span.pass + 1; p <= span.last_pass; ++p) {  // each higher pass overrides where it applies
      columns.copy_(torch::where(pass_at_least(plan, span, scaled.rule, p, tile.device()),
                                 pass_scores(p, span).to(torch::kFloat32), columns));
    }
  }
  return tile;
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
