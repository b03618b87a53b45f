#include "model/fused_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <functional>

#include "model/blas.h"
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

BiasTile bias_tile(const torch::Tensor& bias4, int64_t b, int64_t h) {
  if (!bias4.defined()) return {};
  return {bias4.data_ptr<float>() + (bias4.size(0) == 1 ? 0 : b * bias4.stride(0)) +
              (bias4.size(1) == 1 ? 0 : h * bias4.stride(1)),
          bias4.size(2) == 1 ? 0 : bias4.stride(2)};
}

torch::Tensor as_4d(torch::Tensor bias) {
  while (bias.dim() < 4) bias = bias.unsqueeze(0);
  return bias.contiguous();
}

// One (batch, head) pair's view of the inputs.
struct HeadInputs {
  HeadMatrix q, k, v, q_far, k_far;
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
// spans compute both passes (the far one into `scratch`) and keep the far score where i - j >= far_from.
void block_scores(const BlockPlan& plan, const HeadInputs& in, int64_t dim, float scale, int64_t far_from,
                  float* tile, std::vector<float>& scratch) {
  const int64_t rows = plan.rows(), cols = plan.columns;
  for (const auto& span : plan.spans) {
    const int64_t width = span.end - span.begin;
    float* out = tile + span.column;
    const bool far = span.pass == Pass::kFar;
    const HeadMatrix& q = far ? in.q_far : in.q;
    const HeadMatrix& k = far ? in.k_far : in.k;
    gemm(false, true, rows, width, dim, scale, q.row(plan.q_begin), q.row_stride, k.row(span.begin), k.row_stride,
         0.0f, out, cols);
    if (span.pass != Pass::kMixed) continue;
    scratch.resize(rows * width);
    gemm(false, true, rows, width, dim, scale, in.q_far.row(plan.q_begin), in.q_far.row_stride,
         in.k_far.row(span.begin), in.k_far.row_stride, 0.0f, scratch.data(), width);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t first_near = plan.q_begin + r - far_from + 1;  // keys j >= this are near for row r
      for (int64_t c = 0; c < width && span.begin + c < first_near; ++c) out[r * cols + c] = scratch[r * width + c];
    }
  }
}

// In place over one score tile: add the bias, softmax each row over its visible columns, and zero the
// rest (never exponentiated, so no -inf needed).
void masked_softmax(float* scores, const BlockPlan& plan, const KeyMask& mask, const BiasTile& bias) {
  const int64_t cols = plan.columns;
  for (int64_t r = 0; r < plan.rows(); ++r) {
    float* s = scores + r * cols;
    int64_t ranges[2][2];
    const int n = plan.visible_columns(plan.q_begin + r, mask, ranges);
    if (bias.data) {
      const float* bias_row = bias.data + r * bias.row_stride;
      for (int g = 0; g < n; ++g)
        for (int64_t j = ranges[g][0]; j < ranges[g][1]; ++j) s[j] += bias_row[j];
    }
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
    int64_t next = 0;  // first column not yet handled
    for (int g = 0; g < n; ++g) {
      std::fill(s + next, s + ranges[g][0], 0.0f);
      for (int64_t j = ranges[g][0]; j < ranges[g][1]; ++j) s[j] *= inv;
      next = ranges[g][1];
    }
    std::fill(s + next, s + cols, 0.0f);
  }
}

// Softmax backward in place: dS = P * (dP - sum_j dP * P) over the visible columns (P is zero elsewhere).
void softmax_backward(float* d_s, const float* p, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* ds = d_s + r * cols;
    const float* pr = p + r * cols;
    const float dot = reduce(cols, 0.0f, plus, [ds, pr](int64_t j) { return ds[j] * pr[j]; });
    for (int64_t j = 0; j < cols; ++j) ds[j] = pr[j] * (ds[j] - dot);
  }
}

// The score bias of one block (undefined for bias-free schemes).
using BlockBias = std::function<torch::Tensor(std::size_t i, const BlockPlan& plan)>;

struct Inputs {
  torch::Tensor q, k, v, q_far, k_far;  // far = near tensors when there is a single pass
  int64_t far_from = 0;
};

HeadInputs head_inputs(const Inputs& in, int64_t b, int64_t h) {
  return {head(in.q, b, h), head(in.k, b, h), head(in.v, b, h), head(in.q_far, b, h), head(in.k_far, b, h)};
}

// Forward over all blocks into out [B, T, H, hd]. probs[i] receives block i's probabilities
// [B, H, rows, columns] when training; otherwise a per-thread tile is reused. Biases are requested
// one block at a time, so evaluation never holds more than one block's bias.
void attention_forward(const Inputs& in, const std::vector<BlockPlan>& plans, const KeyMask& mask,
                       const BlockBias& block_bias, float scale, torch::Tensor& out, std::vector<torch::Tensor>* probs) {
  const int64_t batch = in.q.size(0), heads = in.q.size(1), length = in.q.size(2), dim = in.q.size(3);
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const BlockPlan& plan = plans[i];
    const int64_t rows = plan.rows(), cols = plan.columns;
    const auto bias = block_bias(i, plan);
    const auto bias4 = bias.defined() ? as_4d(bias) : torch::Tensor();
    auto block_probs = probs ? torch::empty({batch, heads, rows, cols}, in.q.options()) : torch::Tensor();
    at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
      std::vector<float> tile(probs ? 0 : rows * cols), scratch;
      for (int64_t bh = first; bh < last; ++bh) {
        const int64_t b = bh / heads, h = bh % heads;
        const auto hi = head_inputs(in, b, h);
        float* p = probs ? block_probs.data_ptr<float>() + bh * rows * cols : tile.data();
        block_scores(plan, hi, dim, scale, in.far_from, p, scratch);
        masked_softmax(p, plan, mask, bias_tile(bias4, b, h));
        float* o = out.data_ptr<float>() + (b * length + plan.q_begin) * heads * dim + h * dim;  // [B, T, H, hd]
        for (std::size_t s = 0; s < plan.segments.size(); ++s) {
          const auto& seg = plan.segments[s];
          gemm(false, false, rows, dim, seg.end - seg.begin, 1.0f, p + seg.column, cols, hi.v.row(seg.begin),
               hi.v.row_stride, s == 0 ? 0.0f : 1.0f, o, heads * dim);
        }
      }
    });
    if (probs) probs->push_back(block_probs);
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

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  // q_far and k_far are the near tensors again when far_from == 0 (their gradients are then unused).
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor q_far, torch::Tensor k_far, at::TensorList bias_list, int64_t far_from,
                               int64_t window, int64_t sinks, int64_t block, double scale) {
    const std::vector<torch::Tensor> biases = bias_list.vec();  // a TensorList, so autograd tracks the biases
    Inputs in{blas_ready(q), blas_ready(k), blas_ready(v), blas_ready(q_far), blas_ready(k_far), far_from};
    const KeyMask mask{window, sinks};
    const auto plans = plan_attention(q.size(2), block, mask, far_from);
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
    std::vector<torch::Tensor> probs;
    const BlockBias stored = [&](std::size_t i, const BlockPlan&) {
      return biases.empty() ? torch::Tensor() : biases[i];
    };
    attention_forward(in, plans, mask, stored, float(scale), out, &probs);
    ctx->save_for_backward({in.q, in.k, in.v, in.q_far, in.k_far});
    ctx->saved_data["far_from"] = far_from;
    ctx->saved_data["window"] = window;
    ctx->saved_data["sinks"] = sinks;
    ctx->saved_data["block"] = block;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["probs"] = probs;
    ctx->saved_data["biases"] = biases;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const int64_t far_from = ctx->saved_data["far_from"].toInt();
    const Inputs in{saved[0], saved[1], saved[2], saved[3], saved[4], far_from};
    const KeyMask mask{ctx->saved_data["window"].toInt(), ctx->saved_data["sinks"].toInt()};
    const auto plans = plan_attention(in.q.size(2), ctx->saved_data["block"].toInt(), mask, far_from);
    const float scale = float(ctx->saved_data["scale"].toDouble());
    const auto probs = ctx->saved_data["probs"].toTensorVector();
    const auto biases = ctx->saved_data["biases"].toTensorVector();
    const auto grad_out = grad_outputs[0].contiguous();  // [B, T, H, hd]
    const int64_t batch = in.q.size(0), heads = in.q.size(1), length = in.q.size(2), dim = in.q.size(3);
    // Gradients laid out as [B, T, H, hd] (viewed as [B, H, T, hd]): the layout the q/k/v views of the
    // projection output have, so their backward needs no copy.
    auto zeros_in_projection_layout = [&] { return torch::zeros({batch, length, heads, dim}, in.q.options()).transpose(1, 2); };
    const bool two_pass = far_from > 0;
    auto grad_q = zeros_in_projection_layout(), grad_k = zeros_in_projection_layout(),
         grad_v = zeros_in_projection_layout();
    auto grad_q_far = two_pass ? zeros_in_projection_layout() : torch::Tensor();
    auto grad_k_far = two_pass ? zeros_in_projection_layout() : torch::Tensor();
    variable_list grads{grad_q, grad_k, grad_v, grad_q_far, grad_k_far};
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const BlockPlan& plan = plans[i];
      const int64_t rows = plan.rows(), cols = plan.columns;
      const bool bias_grad = !biases.empty() && biases[i].requires_grad();
      auto grad_scores = bias_grad ? torch::empty_like(probs[i]) : torch::Tensor();
      at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
        std::vector<float> d_s(rows * cols), split;
        for (int64_t bh = first; bh < last; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          const float* p = probs[i].data_ptr<float>() + bh * rows * cols;
          const float* d_out = grad_out.data_ptr<float>() + (b * length + plan.q_begin) * heads * dim + h * dim;
          const auto hi = head_inputs(in, b, h);
          const auto gq = head(grad_q, b, h), gk = head(grad_k, b, h), gv = head(grad_v, b, h);
          for (const auto& seg : plan.segments) {
            const int64_t width = seg.end - seg.begin;
            gemm(true, false, width, dim, rows, 1.0f, p + seg.column, cols, d_out, heads * dim, 1.0f,
                 gv.row(seg.begin), gv.row_stride);
            gemm(false, true, rows, width, dim, 1.0f, d_out, heads * dim, hi.v.row(seg.begin), hi.v.row_stride, 0.0f,
                 d_s.data() + seg.column, cols);
          }
          softmax_backward(d_s.data(), p, rows, cols);
          for (const auto& span : plan.spans) {
            const float* ds = d_s.data() + span.column;
            if (span.pass == Pass::kNear) {
              span_grads(plan, span, ds, cols, dim, scale, hi.q, hi.k, gq, gk);
            } else if (span.pass == Pass::kFar) {
              span_grads(plan, span, ds, cols, dim, scale, hi.q_far, hi.k_far, head(grad_q_far, b, h),
                         head(grad_k_far, b, h));
            } else {
              // Split the mixed span's gradient by pass: near entries to one copy, far to another.
              const int64_t width = span.end - span.begin;
              split.assign(2 * rows * width, 0.0f);
              float* near = split.data();
              float* far = split.data() + rows * width;
              for (int64_t r = 0; r < rows; ++r) {
                const int64_t first_near = plan.q_begin + r - far_from + 1;
                for (int64_t c = 0; c < width; ++c) {
                  (span.begin + c < first_near ? far : near)[r * width + c] = ds[r * cols + c];
                }
              }
              KeySpan local{span.begin, span.end, 0, span.pass};
              span_grads(plan, local, near, width, dim, scale, hi.q, hi.k, gq, gk);
              span_grads(plan, local, far, width, dim, scale, hi.q_far, hi.k_far, head(grad_q_far, b, h),
                         head(grad_k_far, b, h));
            }
          }
          if (bias_grad) std::copy(d_s.begin(), d_s.end(), grad_scores.data_ptr<float>() + bh * rows * cols);
        }
      });
      if (!biases.empty()) grads.push_back(bias_grad ? at::sum_to(grad_scores, biases[i].sizes()) : torch::Tensor());
    }
    for (int extra = 0; extra < 5; ++extra) grads.push_back(torch::Tensor());  // far_from, window, sinks, block, scale
    return grads;
  }
};

}  // namespace

torch::Tensor fused_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
  TORCH_CHECK(qk.q.is_cpu() && qk.q.scalar_type() == torch::kFloat32, "fused attention needs float32 CPU tensors");
  const int64_t far_from = qk.has_far() ? qk.far_from : 0;
  const auto q_far = qk.has_far() ? qk.q_far : qk.q, k_far = qk.has_far() ? qk.k_far : qk.k;
  const auto plans = plan_attention(qk.q.size(2), call.block, call.mask, far_from);
  const BlockBias from_scheme = [&](std::size_t, const BlockPlan& plan) {
    std::vector<torch::Tensor> parts;
    for (const auto& seg : plan.segments) {
      auto part = call.scheme.score_bias(call.positions, plan.q_begin, plan.q_end, seg.begin, seg.end);
      if (!part.defined()) return torch::Tensor();  // a scheme has a bias for every block or for none
      parts.push_back(part.to(torch::kFloat32));
    }
    return parts.size() == 1 ? parts[0] : torch::cat(parts, -1);
  };
  if (torch::GradMode::is_enabled()) {
    // Training: the biases become autograd inputs (learnable bias schemes get gradients).
    std::vector<torch::Tensor> biases;
    for (std::size_t i = 0; i < plans.size(); ++i) {
      auto bias = from_scheme(i, plans[i]);
      if (!bias.defined()) break;
      biases.push_back(bias);
    }
    bool needs_grad = !biases.empty() && biases[0].requires_grad();
    for (const auto* t : {&qk.q, &qk.k, &v, &q_far, &k_far}) needs_grad = needs_grad || t->requires_grad();
    // Without anything to differentiate, keeping every block's probabilities would only cost memory.
    if (needs_grad) {
      return CausalAttentionFunction::apply(qk.q, qk.k, v, q_far, k_far, at::TensorList(biases), far_from,
                                            call.mask.window, call.mask.sinks, call.block, call.scale);
    }
  }
  auto out = torch::empty({qk.q.size(0), qk.q.size(2), qk.q.size(1), qk.q.size(3)}, qk.q.options());  // no probabilities kept
  const Inputs in{blas_ready(qk.q), blas_ready(qk.k), blas_ready(v), blas_ready(q_far), blas_ready(k_far), far_from};
  attention_forward(in, plans, call.mask, from_scheme, float(call.scale), out, nullptr);
  return out;
}

}  // namespace extrap
