#include "model/fused_attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <functional>

#include "model/blas.h"

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

struct Block {
  int64_t begin, end;  // query rows [begin, end); keys [0, end)
};

std::vector<Block> query_blocks(int64_t length, int64_t block) {
  std::vector<Block> blocks;
  for (int64_t begin = 0; begin < length; begin += block) blocks.push_back({begin, std::min(length, begin + block)});
  return blocks;
}

// Bias tile of (b, h) from a contiguous bias broadcastable to [B, H, rows, keys]: its first row
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

// In place over one score tile: add the bias, softmax each row over its visible keys
// [0, begin + r], and zero the keys above the diagonal (never exponentiated, so no -inf needed).
void causal_softmax(float* scores, int64_t rows, int64_t keys, int64_t begin, const BiasTile& bias) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * keys;
    const int64_t visible = begin + r + 1;
    if (bias.data) {
      const float* bias_row = bias.data + r * bias.row_stride;
      for (int64_t j = 0; j < visible; ++j) s[j] += bias_row[j];
    }
    float max = s[0];
    for (int64_t j = 1; j < visible; ++j) max = std::max(max, s[j]);
    // Terms below e^-64 (relative) are flushed to zero: they change nothing at float precision.
    // Clamping before exp keeps every lane in the vectorized exp's fast range; far-below-range
    // arguments (common with distance biases such as ALiBi) send it to a scalar path ~4x slower.
    float sum = 0;
    for (int64_t j = 0; j < visible; ++j) {
      const float x = std::max(s[j] - max, -64.0f);
      s[j] = x == -64.0f ? 0.0f : std::exp(x);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < visible; ++j) s[j] *= inv;
    std::fill(s + visible, s + keys, 0.0f);
  }
}

// The score bias of query block i (undefined for bias-free schemes).
using BlockBias = std::function<torch::Tensor(std::size_t i, const Block& block)>;

// Forward over all blocks into out [B, T, H, hd]. probs[i] receives block i's probabilities
// [B, H, rows, keys] when training; otherwise a per-thread tile is reused. Biases are requested one
// block at a time, so evaluation never holds more than one block's bias.
void attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const BlockBias& block_bias, int64_t block, float scale, torch::Tensor& out,
                       std::vector<torch::Tensor>* probs) {
  const int64_t batch = q.size(0), heads = q.size(1), length = q.size(2), dim = q.size(3);
  const auto blocks = query_blocks(length, block);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const auto [begin, end] = blocks[i];
    const int64_t rows = end - begin;
    const auto bias = block_bias(i, blocks[i]);
    const auto bias4 = bias.defined() ? as_4d(bias) : torch::Tensor();
    auto block_probs = probs ? torch::empty({batch, heads, rows, end}, q.options()) : torch::Tensor();
    at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
      std::vector<float> scratch(probs ? 0 : rows * end);
      for (int64_t bh = first; bh < last; ++bh) {
        const int64_t b = bh / heads, h = bh % heads;
        const auto qm = head(q, b, h), km = head(k, b, h), vm = head(v, b, h);
        float* p = probs ? block_probs.data_ptr<float>() + bh * rows * end : scratch.data();
        gemm(false, true, rows, end, dim, scale, qm.row(begin), qm.row_stride, km.data, km.row_stride, 0.0f, p, end);
        causal_softmax(p, rows, end, begin, bias_tile(bias4, b, h));
        float* o = out.data_ptr<float>() + (b * length + begin) * heads * dim + h * dim;  // [B, T, H, hd]
        gemm(false, false, rows, dim, end, 1.0f, p, end, vm.data, vm.row_stride, 0.0f, o, heads * dim);
      }
    });
    if (probs) probs->push_back(block_probs);
  }
}

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               at::TensorList bias_list, int64_t block, double scale) {
    const std::vector<torch::Tensor> biases = bias_list.vec();  // a TensorList, so autograd tracks the biases
    q = blas_ready(q), k = blas_ready(k), v = blas_ready(v);
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
    std::vector<torch::Tensor> probs;
    const BlockBias stored = [&](std::size_t i, const Block&) { return biases.empty() ? torch::Tensor() : biases[i]; };
    attention_forward(q, k, v, stored, block, float(scale), out, &probs);
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["block"] = block;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["probs"] = probs;
    ctx->saved_data["biases"] = biases;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2];
    const auto grad_out = grad_outputs[0].contiguous();  // [B, T, H, hd]
    const int64_t block = ctx->saved_data["block"].toInt();
    const float scale = float(ctx->saved_data["scale"].toDouble());
    const auto probs = ctx->saved_data["probs"].toTensorVector();
    const auto biases = ctx->saved_data["biases"].toTensorVector();
    const int64_t heads = q.size(1), length = q.size(2), dim = q.size(3);
    // Gradients laid out as [B, T, H, hd] (viewed as [B, H, T, hd]): the layout the q/k/v views of the
    // projection output have, so their backward needs no copy.
    auto in_projection_layout = [&](bool zero) {
      auto t = zero ? torch::zeros({q.size(0), length, heads, dim}, q.options())
                    : torch::empty({q.size(0), length, heads, dim}, q.options());
      return t.transpose(1, 2);
    };
    auto grad_q = in_projection_layout(false), grad_k = in_projection_layout(true), grad_v = in_projection_layout(true);
    const auto blocks = query_blocks(length, block);
    variable_list grads{grad_q, grad_k, grad_v};
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto [begin, end] = blocks[i];
      const int64_t rows = end - begin;
      const bool bias_grad = !biases.empty() && biases[i].requires_grad();
      auto grad_scores = bias_grad ? torch::empty_like(probs[i]) : torch::Tensor();
      at::parallel_for(0, q.size(0) * heads, 1, [&](int64_t first, int64_t last) {
        std::vector<float> d_s(rows * end);
        for (int64_t bh = first; bh < last; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          const float* p = probs[i].data_ptr<float>() + bh * rows * end;
          const float* d_out = grad_out.data_ptr<float>() + (b * length + begin) * heads * dim + h * dim;
          const auto qm = head(q, b, h), km = head(k, b, h), vm = head(v, b, h);
          const auto gq = head(grad_q, b, h), gk = head(grad_k, b, h), gv = head(grad_v, b, h);
          gemm(true, false, end, dim, rows, 1.0f, p, end, d_out, heads * dim, 1.0f, gv.data, gv.row_stride);
          gemm(false, true, rows, end, dim, 1.0f, d_out, heads * dim, vm.data, vm.row_stride, 0.0f, d_s.data(), end);
          // Softmax backward: dS = P * (dP - sum_j dP * P), over the visible keys only.
          for (int64_t r = 0; r < rows; ++r) {
            float* ds = d_s.data() + r * end;
            const float* pr = p + r * end;
            const int64_t visible = begin + r + 1;
            float dot = 0;
            for (int64_t j = 0; j < visible; ++j) dot += ds[j] * pr[j];
            for (int64_t j = 0; j < visible; ++j) ds[j] = pr[j] * (ds[j] - dot);
            std::fill(ds + visible, ds + end, 0.0f);
          }
          gemm(false, false, rows, dim, end, scale, d_s.data(), end, km.data, km.row_stride, 0.0f, gq.row(begin),
               gq.row_stride);
          gemm(true, false, end, dim, rows, scale, d_s.data(), end, qm.row(begin), qm.row_stride, 1.0f, gk.data,
               gk.row_stride);
          if (bias_grad) std::copy(d_s.begin(), d_s.end(), grad_scores.data_ptr<float>() + bh * rows * end);
        }
      });
      if (!biases.empty()) grads.push_back(bias_grad ? at::sum_to(grad_scores, biases[i].sizes()) : torch::Tensor());
    }
    grads.push_back(torch::Tensor());  // block size
    grads.push_back(torch::Tensor());  // scale
    return grads;
  }
};

}  // namespace

torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     PositionScheme& scheme, const Positions& positions, int64_t block, double scale) {
  TORCH_CHECK(q.is_cpu() && q.scalar_type() == torch::kFloat32, "fused attention needs float32 CPU tensors");
  const BlockBias from_scheme = [&](std::size_t, const Block& b) {
    auto bias = scheme.score_bias(positions, b.begin, b.end, 0, b.end);
    return bias.defined() ? bias.to(torch::kFloat32) : bias;
  };
  if (torch::GradMode::is_enabled()) {
    // Training: the biases become autograd inputs (learnable bias schemes get gradients).
    std::vector<torch::Tensor> biases;
    const auto blocks = query_blocks(q.size(2), block);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      auto bias = from_scheme(i, blocks[i]);
      if (!bias.defined()) break;  // a scheme has a bias for every block or for none
      biases.push_back(bias);
    }
    const bool needs_grad = q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                            (!biases.empty() && biases[0].requires_grad());
    // Without anything to differentiate, keeping every block's probabilities would only cost memory.
    if (needs_grad) return CausalAttentionFunction::apply(q, k, v, at::TensorList(biases), block, scale);
  }
  auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());  // no probabilities kept
  attention_forward(blas_ready(q), blas_ready(k), blas_ready(v), from_scheme, block, float(scale), out, nullptr);
  return out;
}

}  // namespace extrap
