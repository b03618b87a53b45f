#pragma once
// A decoder-only GPT with pre-LayerNorm blocks (see docs/model.md for the exact computation and
// the checkpoint tensor names).
#include <torch/torch.h>

#include "config/run_config.h"
#include "model/attention.h"
#include "model/documents.h"
#include "position/scheme.h"

namespace extrap {

// LayerNorm whose bias can be switched off (torch::nn::LayerNorm cannot).
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor weight_, bias_;
};
TORCH_MODULE(LayerNorm);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& model, const AttentionConfig& attention, std::shared_ptr<PositionScheme> scheme,
            int64_t train_length);
  torch::Tensor forward(const torch::Tensor& x, const Positions& positions, const DocumentMask& documents);
  const torch::nn::Linear& fc() const { return fc_; }
  const torch::nn::Linear& fc_proj() const { return fc_proj_; }
  CausalSelfAttention attn{nullptr};

 private:
  LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear fc_{nullptr}, fc_proj_{nullptr};
  double dropout_;
};
TORCH_MODULE(Block);

class GPTImpl : public torch::nn::Module {
 public:
  // layer_schemes[l]: the scheme of layer l (the model-wide one unless a `layers` entry overrides it).
  GPTImpl(const RunConfig& config, std::shared_ptr<PositionScheme> scheme,
          const std::vector<std::shared_ptr<PositionScheme>>& layer_schemes);
  // Every layer with `scheme` and plain attention.
  GPTImpl(const ModelConfig& model, std::shared_ptr<PositionScheme> scheme);
  // tokens: [B, T] int64 -> logits [B, T, vocab], float32. `documents`: how the documents packed
  // into each window are told apart (documents.h; by default a window is one sequence).
  torch::Tensor forward(const torch::Tensor& tokens, const Positions& positions, const DocumentOptions& documents = {});
  // Query rows per attention block: a speed/memory knob that never changes results.
  void set_attention_block(int64_t block);
  // The implementation every attention layer runs and the dtype of its matrix products (the
  // runtime picks them; see src/runtime/).
  void set_attention_kernel(AttentionKernel kernel, c10::ScalarType products);
  // DroPE: while set, no position scheme hook runs (no embedding, rotation or bias): the model is
  // NoPE with the trained weights.
  void set_positions_dropped(bool dropped);
  bool positions_dropped() const { return positions_dropped_; }
  // Runs each distinct scheme's post-update hook once (e.g. KERPLE's projection onto its constraints).
  void after_optimizer_step();
  const ModelConfig& config() const { return config_; }
  int64_t parameter_count() const;

 private:
  void init_weights();
  ModelConfig config_;
  bool positions_dropped_ = false;
  std::shared_ptr<PositionScheme> scheme_;  // model-wide: gives the input embedding
  std::vector<std::shared_ptr<PositionScheme>> layer_schemes_;
  torch::nn::Embedding wte_{nullptr};
  torch::nn::ModuleList blocks_;
  LayerNorm ln_f_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // null when tied to wte
};
TORCH_MODULE(GPT);

// Builds the model described by a resolved run config (schemes included). context_length is the
// window length it will run at (0: the training length); inference-time treatments derive their
// extension factor from it.
GPT build_model(const RunConfig& config, int64_t context_length = 0);

}  // namespace extrap
