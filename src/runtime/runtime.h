#pragma once
// Where and at what precision a model runs: the one layer that moves the model to its device,
// enters the precision context and picks each attention layer's kernel. The trainer, evaluator and
// bench go through it (as nanoGPT sets its autocast context once, and torchtitan applies precision
// as a layer over a model that knows nothing of it); src/model/ never asks where it runs.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "config/run_config.h"
#include "model/gpt.h"

namespace extrap {

class Runtime {
 public:
  // Checks that this LibTorch build and machine can run `device` ("cpu" or "cuda") at `precision`:
  // a UserError names the problem otherwise.
  Runtime(const std::string& device, Precision precision);

  const torch::Device& device() const { return device_; }
  Precision precision() const { return precision_; }
  // Moves the model to the device, its weights in float32 at every precision (bf16 runs keep fp32
  // master weights), and picks each attention layer's kernel: the fused kernel on the CPU; on CUDA,
  // scaled_dot_product_attention where the LibTorch has it (the tiled kernel elsewhere).
  void place(GPT& model) const;

  // While alive, forward passes on this thread run at the runtime's precision: with bf16, matrix
  // products autocast to bfloat16 (accumulating in fp32) and everything else stays fp32. Backward
  // needs no scope: it follows the dtypes the forward recorded.
  class PrecisionScope {
   public:
    PrecisionScope(const PrecisionScope&) = delete;
    PrecisionScope& operator=(const PrecisionScope&) = delete;
    ~PrecisionScope();

   private:
    friend class Runtime;
    PrecisionScope(c10::DeviceType device, bool autocast);
    c10::DeviceType device_;
    bool autocast_, was_enabled_ = false;
    at::ScalarType was_dtype_ = at::kFloat;
  };
  PrecisionScope precision_scope() const { return {device_.type(), precision_ == Precision::kBf16}; }

  // {"device": ..., "precision": ...}, as recorded in run directories and results.
  nlohmann::json to_json() const;

 private:
  torch::Device device_;
  Precision precision_;
};

// "cpu" or "cuda" (the latter only when this LibTorch build and machine have CUDA).
torch::Device resolve_device(const std::string& name);

}  // namespace extrap
