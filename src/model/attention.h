#pragma once
#include <torch/torch.h>

#include "config/run_config.h"
#include "model/attention_call.h"
#include "model/linear.h"
#include "position/scheme.h"

namespace extrap {

// Causal softmax attention with stock batched ops, one block of queries at a time over the keys the
// block can see (attention_plan.h). The score buffer is [B, H, block, visible keys], so memory grows
// linearly with T in evaluation (training keeps each block's probabilities for backward). It
// supports attention dropout, any device and any dtype (scores and softmax in float32); the fused
// CPU kernel (fused_attention.h) computes the same thing faster and is tested against it.
// qk and v: [B, H, T, head_dim]; returns [B, T, H, head_dim].
torch::Tensor blockwise_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call,
                                         double dropout, bool training);

// Causal attention through LibTorch's scaled_dot_product_attention (flash / memory-efficient kernels
// on CUDA, LibTorch 2.1 and later) when the scores are plain: no bias and no far pass. Windows and
// sinks become a boolean mask built on the device. Other layers go to blockwise_causal_attention.
// Same arguments and result layout as blockwise_causal_attention (which handles attention dropout
// in the fallback; tiled_causal_attention otherwise).
torch::Tensor sdpa_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call,
                                    double dropout, bool training);

// Which implementation computes a layer's attention; the runtime (src/runtime/) picks it per model.
// All but the blockwise reference keep training memory linear in T.
enum class AttentionKernel {
  kFusedCpu,   // fused_causal_attention: CPU, float32 products on raw BLAS calls
  kTiled,      // tiled_causal_attention: stock ops on any device, products in the call's product dtype
  kBlockwise,  // blockwise_causal_attention: stock autograd, the reference the others are tested against
  kSdpa,       // sdpa_causal_attention where the scores are plain, the tiled kernel elsewhere
};

inline constexpr EnumName<AttentionKernel> kAttentionKernelNames[] = {{AttentionKernel::kFusedCpu, "fused"},
                                                                       {AttentionKernel::kTiled, "tiled"},
                                                                       {AttentionKernel::kBlockwise, "blockwise"},
                                                                       {AttentionKernel::kSdpa, "sdpa"}};

// Per-query factors that multiply the queries (logits) of one layer, [T] float32, or undefined when
// every factor is 1: log-n scaling (Su: log_{L_train} of the number of visible keys, floored, in
// training; max(1, log_{L_train}(i+1)) at inference, "logn†") and CosA's position-dependent log n.
// With documents, [B, T]: a query sees its document's keys only, and i counts from its start.
// Llama 4's, DroPE's and the constant inference temperatures (attention.temperature) multiply in too.
torch::Tensor query_scales(const AttentionConfig& attention, int64_t length, int64_t train_length,
                           const DocumentStarts& documents = {});
// ln(number of keys each query sees), [T] or [B, T] like query_scales: Scalable-Softmax's ln n.
torch::Tensor visible_key_logs(const AttentionConfig& attention, int64_t length, const DocumentStarts& documents = {});
// The constant in front of q.k: 1/sqrt(d), 1 for QNA/KNA (the unit vector replaces it), 4 log n for CosA.
double score_scale(const AttentionConfig& attention, int64_t head_dim, int64_t train_length);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(const ModelConfig& model, const AttentionConfig& attention,
                          std::shared_ptr<PositionScheme> scheme, int64_t train_length);
  torch::Tensor forward(const torch::Tensor& x, const Positions& positions, const DocumentMask& documents = {});
  void set_block_size(int64_t block) { block_ = block; }
  // The kernel and the dtype of its matrix products (the tiled kernel's; the fused one is float32).
  void set_kernel(AttentionKernel kernel, c10::ScalarType products) {
    kernel_ = kernel;
    product_dtype_ = products;
  }
  void set_positions_dropped(bool dropped) { positions_dropped_ = dropped; }
  // N(0, std) weights and zero biases; the output projection (a residual branch) gets residual_std.
  void init_weights(double std, double residual_std);
  const PositionScheme& scheme() const { return *scheme_; }

 private:
  int64_t n_heads_, head_dim_, train_length_;
  double dropout_;
  AttentionConfig attention_;
  int64_t block_ = 64;  // fastest for training lengths of a few hundred (bench/compare.sh)
  bool positions_dropped_ = false;  // DroPE: the scheme's hooks are skipped
  AttentionKernel kernel_ = AttentionKernel::kFusedCpu;
  c10::ScalarType product_dtype_ = c10::kFloat;
  std::shared_ptr<PositionScheme> scheme_;  // owned by the model, possibly shared with other layers
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
  torch::Tensor qk_bias_;      // [2, H, head_dim] when attention.qk_bias
  torch::Tensor sink_logit_;   // [H] when attention.sink_logit
  torch::Tensor ssmax_scale_;  // [H] when attention.ssmax
  torch::nn::Linear gate_{nullptr};  // d_model -> H or d_model when attention.output_gate
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace extrap
