#include "model/fused_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "model/blas.h"
#include "model/attention_state.h"
#include "model/vector_exp.h"

namespace extrap {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A [T, hd] matrix of one (batch, head) inside a [B, H, T, hd] tensor with unit column stride.
struct HeadMatrix {
  float* data;
  int64_t row_stride;
  float* row(int64_t r) const { return data + r * row_stride; }
};

HeadMatrix head(const torch::Tensor& t, int64_t b, int64_t h) {
  return {t.data_ptr<float>() + b * t.stride(0) + h * t.stride(1), t.stride(2)};
}

// Unit stride along head_dim is all BLAS needs; anything else is copied once.
torch::Tensor blas_ready(const torch::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

// Bias tile of (b, h) from a contiguous bias broadcastable to [B, H, rows, columns]: its first row
// and the stride between rows (0 when one row is shared by all queries, as ALiBi's is).
struct BiasTile {
  const float* data = nullptr;
  int64_t row_stride = 0;
};

// `skipped`: leading columns of the block's bias that the row's tile leaves out (RowBlock).
BiasTile bias_tile(const torch::Tensor& bias4, int64_t b, int64_t h, int64_t skipped) {
  if (!bias4.defined()) return {};
  return {bias4.data_ptr<float>() + (bias4.size(0) == 1 ? 0 : b * bias4.stride(0)) +
              (bias4.size(1) == 1 ? 0 : h * bias4.stride(1)) + skipped,
          bias4.size(2) == 1 ? 0 : bias4.stride(2)};
}

torch::Tensor as_4d(torch::Tensor bias) {
  while (bias.dim() < 4) bias = bias.unsqueeze(0);
  return bias.contiguous();
}

// One (batch, head) pair's view of the inputs: values, and each pass's queries and keys.
struct HeadInputs {
  HeadMatrix v;
  std::array<HeadMatrix, kMaxPasses> q, k;
};

// Folds term(0..n) with combine into kLanes partial results, then those into one. Without -ffast-math
// the compiler keeps a float reduction's order, so a sequential one would not vectorise: this order can.
constexpr int kLanes = 8;

template <typename Combine, typename Term>
float reduce(int64_t n, float init, Combine combine, Term term) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, init);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = combine(lanes[l], term(j + l));
  float result = init;
  for (; j < n; ++j) result = combine(result, term(j));
  for (float lane : lanes) result = combine(result, lane);
  return result;
}

float plus(float a, float b) { return a + b; }
float maximum(float a, float b) { return std::max(a, b); }

// The block's score tile [rows, columns] = scale * q.k over every span, each with its pass. Mixed
// spans compute their lowest pass in place and each higher one into `scratch`, which then overrides
// the row's keys j < boundary(i, p).
void block_scores(const BlockPlan& plan, const HeadInputs& in, int64_t dim, float scale, const PassRule& rule,
                  float* tile, std::vector<float>& scratch) {
  const int64_t rows = plan.rows(), cols = plan.columns;
  for (const auto& span : plan.spans) {
    const int64_t width = span.end - span.begin;
    float* out = tile + span.column;
    const auto product = [&](int p, float* into, int64_t stride) {
      gemm(false, true, rows, width, dim, scale, in.q[p].row(plan.q_begin), in.q[p].row_stride,
           in.k[p].row(span.begin), in.k[p].row_stride, 0.0f, into, stride);
    };
    product(span.pass, out, cols);
    for (int p = span.pass + 1; p <= span.last_pass; ++p) {
      scratch.resize(rows * width);
      product(p, scratch.data(), width);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t end = std::min(span.end, rule.boundary(plan.q_begin + r, p));
        std::copy(scratch.begin() + r * width, scratch.begin() + r * width + std::max<int64_t>(0, end - span.begin),
                  out + r * cols);
      }
    }
  }
}

void add_bias(float* s, const int64_t ranges[2][2], int n, const float* bias_row) {
  for (int g = 0; g < n; ++g)
    for (int64_t j = ranges[g][0]; j < ranges[g][1]; ++j) s[j] += bias_row[j];
}

// Zeroes the columns of a score row outside its visible ranges.
void zero_invisible(float* s, const int64_t ranges[2][2], int n, int64_t cols) {
  int64_t next = 0;  // first column not yet handled
  for (int g = 0; g < n; ++g) {
    std::fill(s + next, s + ranges[g][0], 0.0f);
    next = ranges[g][1];
  }
  std::fill(s + next, s + cols, 0.0f);
}

// Row r of a score tile with its bias added over the visible columns, whose ranges (n of them) are
// written to `ranges`.
float* biased_row(float* scores, int64_t r, const RowBlock& row, const KeyMask& mask, const BiasTile& bias,
                  int64_t ranges[2][2], int& n) {
  const BlockPlan& plan = row.plan();
  float* s = scores + r * plan.columns;
  n = plan.visible_columns(plan.q_begin + r, mask, ranges, row.first_key(r));
  if (bias.data) add_bias(s, ranges, n, bias.data + r * bias.row_stride);
  return s;
}

// In place over one score tile: add the bias, softmax each row over its visible columns, and zero the
// rest (never exponentiated, so no -inf needed). lse (when given) receives each row's log-sum-exp,
// all that backward needs to rebuild the probabilities from recomputed scores.
void masked_softmax(float* scores, const RowBlock& row, const KeyMask& mask, const BiasTile& bias, float* lse) {
  const int64_t cols = row.plan().columns;
  for (int64_t r = 0; r < row.plan().rows(); ++r) {
    int64_t ranges[2][2];
    int n;
    float* s = biased_row(scores, r, row, mask, bias, ranges, n);
    // A NaN score makes its row NaN (through exp), and so does a +inf one (inf - inf); -inf weighs 0.
    float max = s[ranges[0][0]];
    for (int g = 0; g < n; ++g) {
      const float* x = s + ranges[g][0];
      max = reduce(ranges[g][1] - ranges[g][0], max, maximum, [x](int64_t j) { return x[j]; });
    }
    float sum = 0;
    for (int g = 0; g < n; ++g) {
      float* x = s + ranges[g][0];
      const int64_t width = ranges[g][1] - ranges[g][0];
      for (int64_t j = 0; j < width; ++j) x[j] = vector_exp(x[j] - max);
      sum += reduce(width, 0.0f, plus, [x](int64_t j) { return x[j]; });
    }
    const float inv = 1.0f / sum;
    for (int g = 0; g < n; ++g)
      for (int64_t j = ranges[g][0]; j < ranges[g][1]; ++j) s[j] *= inv;
    zero_invisible(s, ranges, n, cols);
    if (lse) lse[r] = max + std::log(sum);
  }
}

// Backward's rebuild of masked_softmax's output from the same scores and the saved log-sum-exp:
// P = exp(s + bias - lse) over the visible columns, 0 elsewhere.
void probabilities_from_lse(float* scores, const RowBlock& row, const KeyMask& mask, const BiasTile& bias,
                            const float* lse) {
  const int64_t cols = row.plan().columns;
  for (int64_t r = 0; r < row.plan().rows(); ++r) {
    int64_t ranges[2][2];
    int n;
    float* s = biased_row(scores, r, row, mask, bias, ranges, n);
    for (int g = 0; g < n; ++g) {
      float* x = s + ranges[g][0];
      const int64_t width = ranges[g][1] - ranges[g][0];
      for (int64_t j = 0; j < width; ++j) x[j] = vector_exp(x[j] - lse[r]);
    }
    zero_invisible(s, ranges, n, cols);
  }
}

// Softmax backward in place: dS = P * (dP - D) with D = sum_j dP * P = dO . O per row (P is zero
// on invisible columns, so they get zero).
void softmax_backward(float* d_s, const float* p, const float* row_dot, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* ds = d_s + r * cols;
    const float* pr = p + r * cols;
    for (int64_t j = 0; j < cols; ++j) ds[j] = pr[j] * (ds[j] - row_dot[r]);
  }
}

// Values, and each pass's queries and keys, ready for BLAS.
struct Inputs {
  torch::Tensor v;
  std::vector<torch::Tensor> q, k;
  PassRule rule;
};

Inputs blas_inputs(const QueryKey& qk, const torch::Tensor& v) {
  Inputs in{blas_ready(v), {}, {}, qk.rule};
  for (int p = 0; p < qk.rule.passes(); ++p) {
    in.q.push_back(blas_ready(qk.query(p)));
    in.k.push_back(blas_ready(qk.key(p)));
  }
  return in;
}

HeadInputs head_inputs(const Inputs& in, int64_t b, int64_t h) {
  HeadInputs hi{head(in.v, b, h), {}, {}};
  for (std::size_t p = 0; p < in.q.size(); ++p) {
    hi.q[p] = head(in.q[p], b, h);
    hi.k[p] = head(in.k[p], b, h);
  }
  return hi;
}

// Forward over all blocks into out [B, T, H, hd]. With lse ([B, H, T] float32) the rows' log-sum-exp
// is stored for backward; the probabilities themselves live in one per-thread tile only.
void attention_forward(const Inputs& in, const std::vector<BlockPlan>& plans, const KeyMask& mask,
                       const BiasSource& biases, const DocumentStarts& documents, float scale, torch::Tensor& out,
                       torch::Tensor* lse) {
  const int64_t batch = in.q[0].size(0), heads = in.q[0].size(1), length = in.q[0].size(2), dim = in.q[0].size(3);
  for (const BlockPlan& block : plans) {
    const auto bias = biases.block_bias(block);
    const auto bias4 = bias.defined() ? as_4d(bias) : torch::Tensor();
    at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
      std::vector<float> tile(block.rows() * block.columns), scratch;
      for (int64_t bh = first; bh < last; ++bh) {
        const int64_t b = bh / heads, h = bh % heads;
        const RowBlock row = row_block(block, documents, b);
        const BlockPlan& plan = row.plan();
        const auto hi = head_inputs(in, b, h);
        float* p = tile.data();
        block_scores(plan, hi, dim, scale, in.rule, p, scratch);
        masked_softmax(p, row, mask, bias_tile(bias4, b, h, row.skipped),
                       lse ? lse->data_ptr<float>() + bh * length + plan.q_begin : nullptr);
        float* o = out.data_ptr<float>() + (b * length + plan.q_begin) * heads * dim + h * dim;  // [B, T, H, hd]
        for (std::size_t s = 0; s < plan.segments.size(); ++s) {
          const auto& seg = plan.segments[s];
          gemm(false, false, plan.rows(), dim, seg.end - seg.begin, 1.0f, p + seg.column, plan.columns,
               hi.v.row(seg.begin), hi.v.row_stride, s == 0 ? 0.0f : 1.0f, o, heads * dim);
        }
      }
    });
  }
}

// One (batch, head) tile's score gradients [rows, row columns] into its slice of the block's
// [B, H, rows, columns] bias gradient, zero in the columns the row left out.
void store_score_grads(const std::vector<float>& d_s, const RowBlock& row, float* grad_scores) {
  const int64_t rows = row.plan().rows(), width = row.plan().columns, columns = width + row.skipped;
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(grad_scores + r * columns, grad_scores + r * columns + row.skipped, 0.0f);
    std::copy(d_s.begin() + r * width, d_s.begin() + (r + 1) * width, grad_scores + r * columns + row.skipped);
  }
}

// Gradients of one span's scores d_s (columns of the tile) into q rows and k keys of one pass.
void span_grads(const BlockPlan& plan, const KeySpan& span, const float* d_s, int64_t cols, int64_t dim, float scale,
                const HeadMatrix& q, const HeadMatrix& k, const HeadMatrix& grad_q, const HeadMatrix& grad_k) {
  const int64_t rows = plan.rows(), width = span.end - span.begin;
  gemm(false, false, rows, dim, width, scale, d_s, cols, k.row(span.begin), k.row_stride, 1.0f,
       grad_q.row(plan.q_begin), grad_q.row_stride);
  gemm(true, false, width, dim, rows, scale, d_s, cols, q.row(plan.q_begin), q.row_stride, 1.0f,
       grad_k.row(span.begin), grad_k.row_stride);
}

// The gradients of v and of each pass's q and k: [B, H, T, hd] views of [B, T, H, hd] storage.
struct Grads {
  torch::Tensor v;
  std::vector<torch::Tensor> q, k;
};

// Score gradients d_s of a block's spans into the q/k gradients of their passes. A mixed span's
// gradient is split by pass: row i's keys [boundary(i, p + 1), boundary(i, p)) go to pass p.
void score_grads(const BlockPlan& plan, const HeadInputs& hi, const float* d_s, int64_t dim, float scale,
                 const PassRule& rule, const Grads& grads, int64_t b, int64_t h, std::vector<float>& split) {
  const int64_t rows = plan.rows(), cols = plan.columns;
  for (const auto& span : plan.spans) {
    const float* ds = d_s + span.column;
    const auto add = [&](int p, const KeySpan& s, const float* d, int64_t stride) {
      span_grads(plan, s, d, stride, dim, scale, hi.q[p], hi.k[p], head(grads.q[p], b, h), head(grads.k[p], b, h));
    };
    if (!span.mixed()) {
      add(span.pass, span, ds, cols);
      continue;
    }
    const int64_t width = span.end - span.begin;
    const KeySpan local{span.begin, span.end, 0, span.pass, span.last_pass};
    for (int p = span.pass; p <= span.last_pass; ++p) {
      split.assign(rows * width, 0.0f);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = plan.q_begin + r;
        const int64_t begin = p < span.last_pass ? std::clamp(rule.boundary(i, p + 1), span.begin, span.end) : span.begin;
        const int64_t end = p > span.pass ? std::clamp(rule.boundary(i, p), begin, span.end) : span.end;
        std::copy(ds + r * cols + (begin - span.begin), ds + r * cols + (end - span.begin),
                  split.begin() + r * width + (begin - span.begin));
      }
      add(p, local, split.data(), width);
    }
  }
}

// FlashAttention's recipe on the CPU: forward keeps one float per query row (its log-sum-exp), and
// backward recomputes each block's scores, biases and probabilities. Memory is linear in T for
// every scheme; the price is one more score product per block in backward.
class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  // far: the far passes' queries and keys (far_pass_tensors), merged by the rule (far_from, chunk).
  // bias_params: the scheme's learnable parameters, inputs here so that autograd routes their
  // gradients through this function.
  // Returns the output and each row's log-sum-exp (both differentiable).
  static variable_list forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               at::TensorList far, at::TensorList bias_params,
                               c10::intrusive_ptr<BiasSourceHolder> biases,
                               c10::intrusive_ptr<DocumentMaskHolder> documents, int64_t far_from, int64_t chunk,
                               int64_t window, int64_t sinks, int64_t block, double scale) {
    const PassRule rule{far_from, chunk};
    const Inputs in = blas_inputs(from_tensors(q, k, far, rule), v);
    const KeyMask mask{window, sinks};
    const auto starts = documents->documents.view();
    const auto plans = plan_attention(q.size(2), block, mask, rule, starts);
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options());
    attention_forward(in, plans, mask, biases->source, starts, float(scale), out, &lse);
    std::vector<torch::Tensor> saved{in.v, out, lse};
    for (int p = 0; p < rule.passes(); ++p) saved.insert(saved.end(), {in.q[p], in.k[p]});
    save_attention_state(ctx, {saved, bias_params.vec(), biases, documents, rule, mask, block, scale});
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const AttentionState state = load_attention_state(ctx);
    const auto& saved = state.tensors;
    const auto &out = saved[1], &lse = saved[2];
    const QueryKey qk = from_tensors(saved[3], saved[4], at::TensorList(saved).slice(5), state.rule);
    const Inputs in = blas_inputs(qk, saved[0]);
    const auto& params = state.params;
    const KeyMask& mask = state.mask;
    const auto plans = state.plans(qk.q.size(2));
    const auto starts = state.document_mask().view();
    const float scale = float(state.scale);
    const auto grad_out = grad_outputs[0].contiguous();  // [B, T, H, hd]
    const int64_t batch = qk.q.size(0), heads = qk.q.size(1), length = qk.q.size(2), dim = qk.q.size(3);
    // D = dO . O per query row: the softmax backward's row term, without the probabilities. A gradient
    // g on the row's log-sum-exp adds g P_ij to dS_ij, which is the same as D - g.
    auto row_dot = (grad_out * out).sum(-1).transpose(1, 2);  // [B, H, T]
    if (grad_outputs[1].defined()) row_dot = row_dot - grad_outputs[1];
    row_dot = row_dot.contiguous();
    // Gradients laid out as [B, T, H, hd] (viewed as [B, H, T, hd]): the layout the q/k/v views of the
    // projection output have, so their backward needs no copy.
    auto zeros_in_projection_layout = [&] { return torch::zeros({batch, length, heads, dim}, qk.q.options()).transpose(1, 2); };
    Grads grads{zeros_in_projection_layout(), {}, {}};
    for (int p = 0; p < state.rule.passes(); ++p) {
      grads.q.push_back(zeros_in_projection_layout());
      grads.k.push_back(zeros_in_projection_layout());
    }
    std::vector<torch::Tensor> param_grads(params.size());
    for (const BlockPlan& block : plans) {
      const torch::Tensor bias = state.backward_bias(block);
      const auto bias4 = bias.defined() ? as_4d(bias.detach()) : torch::Tensor();
      const bool bias_grad = bias.defined() && bias.requires_grad();
      auto grad_scores =
          bias_grad ? torch::empty({batch, heads, block.rows(), block.columns}, qk.q.options()) : torch::Tensor();
      at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
        std::vector<float> p(block.rows() * block.columns), d_s(block.rows() * block.columns), scratch, split;
        for (int64_t bh = first; bh < last; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          const RowBlock row = row_block(block, starts, b);
          const BlockPlan& plan = row.plan();
          const int64_t rows = plan.rows(), cols = plan.columns;
          const auto hi = head_inputs(in, b, h);
          block_scores(plan, hi, dim, scale, state.rule, p.data(), scratch);
          probabilities_from_lse(p.data(), row, mask, bias_tile(bias4, b, h, row.skipped),
                                 lse.data_ptr<float>() + bh * length + plan.q_begin);
          const float* d_out = grad_out.data_ptr<float>() + (b * length + plan.q_begin) * heads * dim + h * dim;
          const auto gv = head(grads.v, b, h);
          for (const auto& seg : plan.segments) {
            const int64_t width = seg.end - seg.begin;
            gemm(true, false, width, dim, rows, 1.0f, p.data() + seg.column, cols, d_out, heads * dim, 1.0f,
                 gv.row(seg.begin), gv.row_stride);
            gemm(false, true, rows, width, dim, 1.0f, d_out, heads * dim, hi.v.row(seg.begin), hi.v.row_stride, 0.0f,
                 d_s.data() + seg.column, cols);
          }
          softmax_backward(d_s.data(), p.data(), row_dot.data_ptr<float>() + bh * length + plan.q_begin, rows, cols);
          score_grads(plan, hi, d_s.data(), dim, scale, state.rule, grads, b, h, split);
          if (bias_grad) store_score_grads(d_s, row, grad_scores.data_ptr<float>() + bh * block.rows() * block.columns);
        }
      });
      if (bias_grad) add_bias_parameter_grads(bias, grad_scores, params, param_grads);
    }
    variable_list result{grads.q[0], grads.k[0], grads.v};
    for (int p = 1; p < state.rule.passes(); ++p) result.insert(result.end(), {grads.q[p], grads.k[p]});
    result.insert(result.end(), param_grads.begin(), param_grads.end());
    for (int extra = 0; extra < 8; ++extra) result.push_back(torch::Tensor());  // biases, documents, far_from, ..., scale
    return result;
  }
};

}  // namespace

torch::Tensor fused_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
  TORCH_CHECK(qk.q.is_cpu() && qk.q.scalar_type() == torch::kFloat32, "fused attention needs float32 CPU tensors");
  const BiasSource biases{&call.scheme, call.positions};
  const auto params = learnable_parameters(call.scheme);
  if (needs_backward(qk, v, params)) {
    auto outputs = CausalAttentionFunction::apply(
        qk.q, qk.k, v, at::TensorList(far_pass_tensors(qk)), at::TensorList(params),
        c10::make_intrusive<BiasSourceHolder>(biases), c10::make_intrusive<DocumentMaskHolder>(call.documents),
        qk.rule.far_from, qk.rule.chunk, call.mask.window, call.mask.sinks, call.block, call.scale);
    if (call.log_sum_exp) *call.log_sum_exp = outputs[1];
    return outputs[0];
  }
  auto out = torch::empty({qk.q.size(0), qk.q.size(2), qk.q.size(1), qk.q.size(3)}, qk.q.options());
  torch::Tensor lse;
  if (call.log_sum_exp) lse = torch::empty({qk.q.size(0), qk.q.size(1), qk.q.size(2)}, qk.q.options());
  const auto starts = call.documents.view();
  attention_forward(blas_inputs(qk, v), plan_attention(qk.q.size(2), call.block, call.mask, qk.rule, starts), call.mask,
                    biases, starts, float(call.scale), out, call.log_sum_exp ? &lse : nullptr);
  if (call.log_sum_exp) *call.log_sum_exp = lse;
  return out;
}

}  // namespace extrap
