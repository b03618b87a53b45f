#pragma once
// AdamW with decoupled weight decay (Loshchilov & Hutter), written out so that its whole state
// (step, first and second moments) is explicit and can be saved and restored bit for bit.
// Weight decay applies to matrices (dim >= 2: linear weights, embeddings), not to biases (any
// parameter whose name ends in "bias", whatever its shape), norms or 1-D scheme parameters, as in nanoGPT.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "train/safetensors.h"

namespace extrap {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> named_parameters, AdamWOptions options);
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  std::vector<torch::Tensor> parameters() const;

  TensorMap state() const;  // "exp_avg.<name>", "exp_avg_sq.<name>" and "step"
  void load_state(const TensorMap& state, const std::string& source);

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  void update_in_one_pass(Slot& slot, const torch::Tensor& grad, double decay, double step_size,
                          double inv_sqrt_correction2);
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace extrap
