#include "model/fused_attention.h"

#include <ATen/Parallel.h>

#include <limits>

namespace extrap {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Block {
  int64_t begin, end;  // query rows [begin, end); keys [0, end)
};

std::vector<Block> query_blocks(int64_t length, int64_t block) {
  std::vector<Block> blocks;
  for (int64_t begin = 0; begin < length; begin += block) blocks.push_back({begin, std::min(length, begin + block)});
  return blocks;
}

// The bias tile of batch b, head h, viewed from a bias broadcastable to [B, H, rows, keys].
torch::Tensor bias_tile(const torch::Tensor& bias4, int64_t b, int64_t h) {
  return bias4[bias4.size(0) == 1 ? 0 : b][bias4.size(1) == 1 ? 0 : h];
}

torch::Tensor as_4d(torch::Tensor bias) {
  while (bias.dim() < 4) bias = bias.unsqueeze(0);
  return bias;
}

// In-place: tile (rows x keys) of scores -> probabilities, with the causal triangle of the
// diagonal sub-block (its first key column is `diagonal`) masked.
void masked_softmax_(torch::Tensor& scores, const torch::Tensor& triangle, int64_t diagonal) {
  const int64_t rows = scores.size(0);
  scores.narrow(1, diagonal, rows).add_(triangle.narrow(0, 0, rows).narrow(1, 0, rows));
  scores = at::_softmax(scores, 1, false);
}

// Forward over all blocks. out: [B, T, H, hd]. When `probs` is given, each block's probabilities
// [B, H, rows, keys] are kept for the backward pass.
void attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const std::vector<torch::Tensor>& biases, int64_t block, torch::Tensor& out,
                       std::vector<torch::Tensor>* probs) {
  const int64_t batch = q.size(0), heads = q.size(1), length = q.size(2);
  const auto triangle = torch::full({block, block}, -std::numeric_limits<float>::infinity(), q.options()).triu(1);
  const auto blocks = query_blocks(length, block);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const auto [begin, end] = blocks[i];
    const auto bias4 = biases.empty() ? torch::Tensor() : as_4d(biases[i]);
    auto block_probs = probs ? torch::empty({batch, heads, end - begin, end}, q.options()) : torch::Tensor();
    at::parallel_for(0, batch * heads, 1, [&](int64_t first, int64_t last) {
      for (int64_t bh = first; bh < last; ++bh) {
        const int64_t b = bh / heads, h = bh % heads;
        auto scores = torch::mm(q[b][h].slice(0, begin, end), k[b][h].slice(0, 0, end).t());
        if (bias4.defined()) scores.add_(bias_tile(bias4, b, h));
        masked_softmax_(scores, triangle, begin);
        auto o = out[b].select(1, h).slice(0, begin, end);
        at::mm_out(o, scores, v[b][h].slice(0, 0, end));
        if (probs) block_probs[b][h].copy_(scores);
      }
    });
    if (probs) probs->push_back(block_probs);
  }
}

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               at::TensorList bias_list, int64_t block) {
    const std::vector<torch::Tensor> biases = bias_list.vec();  // a TensorList, so autograd tracks the biases
    auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());
    std::vector<torch::Tensor> probs;
    attention_forward(q, k, v, biases, block, out, &probs);
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["block"] = block;
    ctx->saved_data["probs"] = probs;
    ctx->saved_data["biases"] = biases;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2];
    const auto& grad_out = grad_outputs[0];  // [B, T, H, hd]
    const int64_t block = ctx->saved_data["block"].toInt();
    const auto probs = ctx->saved_data["probs"].toTensorVector();
    const auto biases = ctx->saved_data["biases"].toTensorVector();
    const int64_t heads = q.size(1);
    auto grad_q = torch::empty_like(q), grad_k = torch::zeros_like(k), grad_v = torch::zeros_like(v);
    const auto blocks = query_blocks(q.size(2), block);
    variable_list grads{grad_q, grad_k, grad_v};
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto [begin, end] = blocks[i];
      const bool bias_grad = !biases.empty() && biases[i].requires_grad();
      auto grad_scores = bias_grad ? torch::empty_like(probs[i]) : torch::Tensor();
      at::parallel_for(0, q.size(0) * heads, 1, [&](int64_t first, int64_t last) {
        for (int64_t bh = first; bh < last; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          const auto p = probs[i][b][h];                                     // [rows, keys]
          const auto d_out = grad_out[b].select(1, h).slice(0, begin, end);  // [rows, hd]
          grad_v[b][h].slice(0, 0, end).addmm_(p.t(), d_out);
          auto d_p = torch::mm(d_out, v[b][h].slice(0, 0, end).t());
          auto d_s = (d_p - (d_p * p).sum(1, true)).mul_(p);  // softmax backward
          auto gq = grad_q[b][h].slice(0, begin, end);
          at::mm_out(gq, d_s, k[b][h].slice(0, 0, end));
          grad_k[b][h].slice(0, 0, end).addmm_(d_s.t(), q[b][h].slice(0, begin, end));
          if (bias_grad) grad_scores[b][h].copy_(d_s);
        }
      });
      if (!biases.empty()) grads.push_back(bias_grad ? at::sum_to(grad_scores, biases[i].sizes()) : torch::Tensor());
    }
    grads.push_back(torch::Tensor());  // block size
    return grads;
  }
};

}  // namespace

torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     PositionScheme& scheme, const Positions& positions, int64_t block) {
  std::vector<torch::Tensor> biases;
  const int64_t length = q.size(2);
  for (const auto& [begin, end] : query_blocks(length, block)) {
    auto bias = scheme.score_bias(positions, begin, end, 0, end);
    if (!bias.defined()) break;  // a scheme has a bias for every block or for none
    biases.push_back(bias.contiguous());
  }
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                           (!biases.empty() && biases[0].requires_grad()));
  if (needs_grad) return CausalAttentionFunction::apply(q, k, v, at::TensorList(biases), block);
  auto out = torch::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options());  // no probabilities kept
  attention_forward(q, k, v, biases, block, out, nullptr);
  return out;
}

}  // namespace extrap
