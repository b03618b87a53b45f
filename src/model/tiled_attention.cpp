#include "model/tiled_attention.h"

#include "model/attention_state.h"

namespace extrap {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// t in `dtype`, contiguous as [B, H, T, hd]: batched products then view their operands' block slices
// as [B * H, rows, hd] instead of copying them (the projections' views are [B, T, H, hd] underneath).
torch::Tensor product_operand(const torch::Tensor& t, c10::ScalarType dtype) {
  return t.to(dtype).contiguous();
}

// Queries times the score scale, and every pass's queries and keys as product operands.
QueryKey product_inputs(const QueryKey& qk, double scale, c10::ScalarType dtype) {
  QueryKey p{product_operand(qk.q * scale, dtype), product_operand(qk.k, dtype)};
  for (const auto& pair : qk.far_passes) {
    p.far_passes.push_back({product_operand(pair.q * scale, dtype), product_operand(pair.k, dtype)});
  }
  p.rule = qk.rule;
  return p;
}

// The block's scores with mask and bias, float32 [B, H, rows, columns]. In place: on the CPU every
// pass over the tile costs about as much as its bf16 products.
torch::Tensor masked_scores(const QueryKey& scaled, const BlockPlan& plan, const KeyMask& mask,
                            const DocumentMask& documents, const torch::Tensor& bias) {
  auto scores = block_scores(scaled, plan);
  scores.add_(mask_tile(plan, mask, scores.options(), documents));
  return bias.defined() ? scores.add_(bias) : scores;
}

// Forward into out [B, T, H, hd]; lse [B, H, T] float32 receives each row's log-sum-exp when defined.
void tiled_forward(const QueryKey& scaled, const torch::Tensor& v, const std::vector<BlockPlan>& plans,
                   const KeyMask& mask, const DocumentMask& documents, const BiasSource& biases, torch::Tensor& out,
                   torch::Tensor lse) {
  // Widest blocks first: each later, narrower block's temporaries then fit in memory the allocator
  // just freed, where growing sizes would fragment the heap (peak memory would grow faster than T).
  for (auto it = plans.rbegin(); it != plans.rend(); ++it) {
    const BlockPlan& plan = *it;
    const auto scores = masked_scores(scaled, plan, mask, documents, biases.block_bias(plan));
    const auto probs32 = torch::softmax(scores, -1);  // every row sees one key at least
    if (lse.defined()) {
      // The log-sum-exp from the row maximum: its probability is at least 1 / keys, so its log is exact
      // to float rounding, and this costs two reductions instead of logsumexp's passes.
      lse.slice(2, plan.q_begin, plan.q_end).copy_(scores.amax(-1) - probs32.amax(-1).log());
    }
    const auto probs = probs32.to(v.scalar_type());
    torch::Tensor rows;
    for (const auto& seg : plan.segments) {
      auto part = torch::matmul(probs.narrow(-1, seg.column, seg.end - seg.begin), v.slice(2, seg.begin, seg.end));
      rows = rows.defined() ? rows + part : part;
    }
    out.slice(1, plan.q_begin, plan.q_end).copy_(rows.transpose(1, 2));
  }
}

// One span's score gradient ds into its pass's q rows and k keys (ds is already in the product dtype).
void add_span_grads(const torch::Tensor& ds, const BlockPlan& plan, const KeySpan& span, const torch::Tensor& q,
                    const torch::Tensor& k, torch::Tensor& grad_q, torch::Tensor& grad_k) {
  grad_q.slice(2, plan.q_begin, plan.q_end).add_(torch::matmul(ds, k.slice(2, span.begin, span.end)));
  grad_k.slice(2, span.begin, span.end).add_(torch::matmul(ds.transpose(-2, -1), q.slice(2, plan.q_begin, plan.q_end)));
}

class TiledAttentionFunction : public torch::autograd::Function<TiledAttentionFunction> {
 public:
  // far: the far passes' queries and keys (far_pass_tensors), merged by the rule (far_from, chunk).
  // bias_params: the scheme's learnable parameters.
  // Returns the output and each row's log-sum-exp (both differentiable).
  static variable_list forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               at::TensorList far, at::TensorList bias_params,
                               c10::intrusive_ptr<BiasSourceHolder> biases,
                               c10::intrusive_ptr<DocumentMaskHolder> documents, int64_t far_from, int64_t chunk,
                               int64_t window, int64_t sinks, int64_t block, double scale, int64_t dtype) {
    const auto product = c10::ScalarType(dtype);
    const PassRule rule{far_from, chunk};
    const KeyMask mask{window, sinks};
    const DocumentMask& document_mask = documents->documents;
    const auto plans = plan_attention(q.size(2), block, mask, rule, document_mask.view());
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, v.options().dtype(product));
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
    tiled_forward(product_inputs(from_tensors(q, k, far, rule), scale, product), product_operand(v, product), plans,
                  mask, document_mask, biases->source, out, lse);
    std::vector<torch::Tensor> saved{q, k, v, lse};
    saved.insert(saved.end(), far.begin(), far.end());
    save_attention_state(ctx, {saved, bias_params.vec(), biases, documents, rule, mask, block, scale});
    ctx->saved_data["dtype"] = dtype;
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const AttentionState state = load_attention_state(ctx);
    const auto& saved = state.tensors;
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &lse = saved[3];
    const auto& params = state.params;
    const KeyMask& mask = state.mask;
    const auto plans = state.plans(q.size(2));
    const double scale = state.scale;
    const auto product = c10::ScalarType(ctx->saved_data["dtype"].toInt());
    const QueryKey qk = from_tensors(q, k, at::TensorList(saved).slice(4), state.rule);
    const QueryKey scaled = product_inputs(qk, scale, product);
    const auto v_product = product_operand(v, product);
    const auto grad_out_product = product_operand(grad_outputs[0].transpose(1, 2), product);  // [B, H, T, hd]
    const auto& grad_lse = grad_outputs[1];  // undefined unless the log-sum-exp was used
    const auto zeros = [&] { return torch::zeros(q.sizes(), q.options().dtype(torch::kFloat32)); };
    auto grad_v = zeros();
    // Float32 accumulators of each pass's q and k gradients, in the scaled-input sense.
    std::vector<torch::Tensor> grad_q, grad_k;
    for (int p = 0; p < qk.rule.passes(); ++p) {
      grad_q.push_back(zeros());
      grad_k.push_back(zeros());
    }
    std::vector<torch::Tensor> param_grads(params.size());
    for (auto it = plans.rbegin(); it != plans.rend(); ++it) {  // widest first, as in forward
      const BlockPlan& plan = *it;
      const torch::Tensor bias = state.backward_bias(plan);
      const auto rows = [&](const torch::Tensor& t) { return t.slice(2, plan.q_begin, plan.q_end); };
      const auto probs =
          masked_scores(scaled, plan, mask, state.document_mask(), bias.defined() ? bias.detach() : bias)
              .sub_(rows(lse).unsqueeze(-1))
              .exp_();
      const auto probs_product = probs.to(product);
      const auto d_out = rows(grad_out_product);
      std::vector<torch::Tensor> d_probs;
      for (const auto& seg : plan.segments) {
        const auto width = seg.end - seg.begin;
        grad_v.slice(2, seg.begin, seg.end)
            .add_(torch::matmul(probs_product.narrow(-1, seg.column, width).transpose(-2, -1), d_out));
        d_probs.push_back(torch::matmul(d_out, v_product.slice(2, seg.begin, seg.end).transpose(-2, -1)).to(torch::kFloat32));
      }
      // P * (dP - rowsum(dP * P)) in one fused pass.
      const auto d_scores = at::_softmax_backward_data(d_probs.size() == 1 ? d_probs[0] : torch::cat(d_probs, -1),
                                                       probs, -1, torch::kFloat32);
      // d lse_i / d s_ij = P_ij: a gradient on the log-sum-exp adds P times it.
      if (grad_lse.defined()) d_scores.add_(probs * rows(grad_lse).unsqueeze(-1));
      if (bias.defined() && bias.requires_grad()) add_bias_parameter_grads(bias, d_scores, params, param_grads);
      const auto ds = d_scores.to(product);
      for (const auto& span : plan.spans) {
        const auto span_ds = ds.narrow(-1, span.column, span.end - span.begin);
        for (int p = span.pass; p <= span.last_pass; ++p) {
          const auto pass_ds =
              span.mixed() ? span_ds.masked_fill(pass_pairs(plan, span, qk.rule, p, q.device()).logical_not(), 0) : span_ds;
          add_span_grads(pass_ds, plan, span, scaled.query(p), scaled.key(p), grad_q[p], grad_k[p]);
        }
      }
    }
    // Scores are (scale q).k: dq = scale dS k, while dk = dS^T (scale q) is what was accumulated.
    const auto query_grad = [&](int p) { return (grad_q[p] * scale).to(qk.query(p).scalar_type()); };
    const auto key_grad = [&](int p) { return grad_k[p].to(qk.key(p).scalar_type()); };
    variable_list result{query_grad(0), key_grad(0), grad_v.to(v.scalar_type())};
    for (int p = 1; p < qk.rule.passes(); ++p) result.insert(result.end(), {query_grad(p), key_grad(p)});
    result.insert(result.end(), param_grads.begin(), param_grads.end());
    for (int extra = 0; extra < 9; ++extra) result.push_back(torch::Tensor());  // biases, documents, far_from, ..., dtype
    return result;
  }
};

}  // namespace

torch::Tensor tiled_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
  const BiasSource biases{&call.scheme, call.positions};
  const auto params = learnable_parameters(call.scheme);
  if (needs_backward(qk, v, params)) {
    auto outputs = TiledAttentionFunction::apply(
        qk.q, qk.k, v, at::TensorList(far_pass_tensors(qk)), at::TensorList(params),
        c10::make_intrusive<BiasSourceHolder>(biases), c10::make_intrusive<DocumentMaskHolder>(call.documents),
        qk.rule.far_from, qk.rule.chunk, call.mask.window, call.mask.sinks, call.block, call.scale,
        int64_t(call.product_dtype));
    if (call.log_sum_exp) *call.log_sum_exp = outputs[1];
    return outputs[0];
  }
  const auto plans = plan_attention(qk.q.size(2), call.block, call.mask, qk.rule, call.documents.view());
  auto out = torch::empty({qk.q.size(0), qk.q.size(2), qk.q.size(1), qk.q.size(3)}, v.options().dtype(call.product_dtype));
  torch::Tensor lse;
  if (call.log_sum_exp) lse = torch::empty({qk.q.size(0), qk.q.size(1), qk.q.size(2)}, qk.q.options().dtype(torch::kFloat32));
  tiled_forward(product_inputs(qk, call.scale, call.product_dtype), product_operand(v, call.product_dtype), plans, call.mask,
                call.documents, biases, out, lse);
  if (call.log_sum_exp) *call.log_sum_exp = lse;
  return out;
}

}  // namespace extrap
