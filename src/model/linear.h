#pragma once
#include <torch/torch.h>

namespace extrap {

// x @ W^T + b as one addmm with the bias fused: LibTorch 1.13's C++ Linear module computes a matmul
// and a separate add for inputs of more than two dimensions.
inline torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& layer) {
  return torch::linear(x, layer->weight, layer->bias);
}

// N(0, std) weights and zero biases (GPT-2 initialisation).
void init_linear(const torch::nn::Linear& layer, double std);

}  // namespace extrap
