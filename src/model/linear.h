#pragma once
#include <torch/torch.h>

namespace extrap {

// x @ W^T + b. On the CPU its backward runs the input-gradient and weight-gradient products
// concurrently, each single-threaded on its own core: on 2 cores that beats splitting every
// product across both (measured in docs/performance.md). Elsewhere it is torch::linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// N(0, std) weights and zero biases (GPT-2 initialisation).
void init_linear(const torch::nn::Linear& layer, double std);

inline torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& layer) {
  return linear(x, layer->weight, layer->bias);
}

}  // namespace extrap
