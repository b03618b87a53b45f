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

// Queries times the score scale and all four tensors as product operands.
QueryKey product_inputs(const QueryKey& qk, double scale, c10::ScalarType dtype) {
  QueryKey p;
  p.q = product_operand(qk.q * scale, dtype);
  p.k = product_operand(qk.k, dtype);
  if (qk.has_far()) {
    p.q_far = product_operand(qk.q_far * scale, dtype);
    p.k_far = product_operand(qk.k_far, dtype);
    p.far_from = qk.far_from;
  }
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

// Float32 gradient accumulators of q, k and (with a far pass) q_far, k_far, in the scaled-input sense.
struct ScoreGrads {
  torch::Tensor q, k, q_far, k_far;
};

// One span's score gradient ds into its pass's q rows and k keys (ds is already in the product dtype).
void add_span_grads(const torch::Tensor& ds, const BlockPlan& plan, const KeySpan& span, const torch::Tensor& q,
                    const torch::Tensor& k, torch::Tensor& grad_q, torch::Tensor& grad_k) {
  grad_q.slice(2, plan.q_begin, plan.q_end).add_(torch::matmul(ds, k.slice(2, span.begin, span.end)));
  grad_k.slice(2, span.begin, span.end).add_(torch::matmul(ds.transpose(-2, -1), q.slice(2, plan.q_begin, plan.q_end)));
}

class TiledAttentionFunction : public torch::autograd::Function<TiledAttentionFunction> {
 public:
  // q_far and k_far are q and k again when far_from == 0 (a single pass; autograd needs defined
  // inputs). bias_params: the scheme's learnable parameters.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor q_far, torch::Tensor k_far, at::TensorList bias_params,
                               c10::intrusive_ptr<BiasSourceHolder> biases,
                               c10::intrusive_ptr<DocumentMaskHolder> documents, int64_t far_from, int64_t window,
                               int64_t sinks, int64_t block, double scale, int64_t dtype) {
    const auto product = c10::ScalarType(dtype);
    QueryKey qk{q, k};
    if (far_from > 0) {
      qk.q_far = q_far;
      qk.k_far = k_far;
      qk.far_from = far_from;
    }
    const KeyMask mask{window, sinks};
    const DocumentMask& document_mask = documents->documents;
    const auto plans = plan_attention(q.size(2), block, mask, far_from, document_mask.view());
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, v.options().dtype(product));
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
    tiled_forward(product_inputs(qk, scale, product), product_operand(v, product), plans, mask, document_mask,
                  biases->source, out, lse);
    save_attention_state(ctx,
                         {{q, k, v, q_far, k_far, lse}, bias_params.vec(), biases, documents, far_from, mask, block, scale});
    ctx->saved_data["dtype"] = dtype;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const AttentionState state = load_attention_state(ctx, 6);
    const auto& saved = state.tensors;
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &q_far = saved[3], &k_far = saved[4];
    const auto& lse = saved[5];
    const auto& params = state.params;
    const int64_t far_from = state.far_from;
    const KeyMask& mask = state.mask;
    const auto plans = state.plans(q.size(2));
    const double scale = state.scale;
    const auto product = c10::ScalarType(ctx->saved_data["dtype"].toInt());
    QueryKey qk{q, k};
    if (far_from > 0) {
      qk.q_far = q_far;
      qk.k_far = k_far;
      qk.far_from = far_from;
    }
    const QueryKey scaled = product_inputs(qk, scale, product);
    const auto v_product = product_operand(v, product);
    const auto grad_out_product = product_operand(grad_outputs[0].transpose(1, 2), product);  // [B, H, T, hd]
    const auto zeros = [&] { return torch::zeros(q.sizes(), q.options().dtype(torch::kFloat32)); };
    auto grad_v = zeros();
    ScoreGrads grads{zeros(), zeros(), far_from > 0 ? zeros() : torch::Tensor(), far_from > 0 ? zeros() : torch::Tensor()};
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
      if (bias.defined() && bias.requires_grad()) add_bias_parameter_grads(bias, d_scores, params, param_grads);
      const auto ds = d_scores.to(product);
      for (const auto& span : plan.spans) {
        const auto span_ds = ds.narrow(-1, span.column, span.end - span.begin);
        if (span.pass == Pass::kNear) {
          add_span_grads(span_ds, plan, span, scaled.q, scaled.k, grads.q, grads.k);
        } else if (span.pass == Pass::kFar) {
          add_span_grads(span_ds, plan, span, scaled.q_far, scaled.k_far, grads.q_far, grads.k_far);
        } else {
          const auto near = near_pairs(plan, span, far_from, q.device());
          add_span_grads(span_ds.masked_fill(near.logical_not(), 0), plan, span, scaled.q, scaled.k, grads.q, grads.k);
          add_span_grads(span_ds.masked_fill(near, 0), plan, span, scaled.q_far, scaled.k_far, grads.q_far, grads.k_far);
        }
      }
    }
    // Scores are (scale q).k: dq = scale dS k, while dk = dS^T (scale q) is what was accumulated.
    variable_list result{(grads.q * scale).to(q.scalar_type()), grads.k.to(k.scalar_type()), grad_v.to(v.scalar_type()),
                         far_from > 0 ? (grads.q_far * scale).to(q_far.scalar_type()) : torch::Tensor(),
                         far_from > 0 ? grads.k_far.to(k_far.scalar_type()) : torch::Tensor()};
    result.insert(result.end(), param_grads.begin(), param_grads.end());
    for (int extra = 0; extra < 8; ++extra) result.push_back(torch::Tensor());  // biases, documents, far_from, ..., dtype
    return result;
  }
};

}  // namespace

torch::Tensor tiled_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
  const BiasSource biases{&call.scheme, call.positions};
  const auto params = learnable_parameters(call.scheme);
  if (needs_backward(qk, v, params)) {
    const bool two_pass = qk.has_far();
    return TiledAttentionFunction::apply(qk.q, qk.k, v, two_pass ? qk.q_far : qk.q, two_pass ? qk.k_far : qk.k,
                                         at::TensorList(params), c10::make_intrusive<BiasSourceHolder>(biases),
                                         c10::make_intrusive<DocumentMaskHolder>(call.documents),
                                         two_pass ? qk.far_from : 0, call.mask.window, call.mask.sinks, call.block,
                                         call.scale, int64_t(call.product_dtype));
  }
  const auto plans =
      plan_attention(qk.q.size(2), call.block, call.mask, qk.has_far() ? qk.far_from : 0, call.documents.view());
  auto out = torch::empty({qk.q.size(0), qk.q.size(2), qk.q.size(1), qk.q.size(3)}, v.options().dtype(call.product_dtype));
  tiled_forward(product_inputs(qk, call.scale, call.product_dtype), product_operand(v, call.product_dtype), plans, call.mask,
                call.documents, biases, out, torch::Tensor());
  return out;
}

}  // namespace extrap
