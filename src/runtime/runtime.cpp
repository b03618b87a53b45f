#include "runtime/runtime.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/torch_compat.h"

namespace extrap {
namespace {

// bf16 needs bfloat16 matrix products on the device; on a CPU without AVX512-BF16 they are
// emulated and slower than fp32 (allowed, with a warning).
void check_bf16(const torch::Device& device) {
  try {
    const auto a = torch::ones({4, 4}, torch::TensorOptions().dtype(torch::kBFloat16).device(device));
    (void)torch::mm(a, a).sum().item<float>();
  } catch (const c10::Error&) {
    throw UserError("--precision bf16: this LibTorch build cannot multiply bfloat16 matrices on " + device.str() +
                    " (use --precision fp32)");
  }
  if (device.is_cpu() && !__builtin_cpu_supports("avx512bf16")) {
    spdlog::warn("--precision bf16: this CPU has no AVX512-BF16, so bfloat16 products are emulated and slower than fp32");
  }
}

}  // namespace

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) {
      throw UserError("--device cuda: this LibTorch build or machine has no CUDA device (use --device cpu)");
    }
    return torch::kCUDA;
  }
  throw UserError("--device " + name + ": expected cpu or cuda");
}

Runtime::Runtime(const std::string& device, Precision precision)
    : device_(resolve_device(device)), precision_(precision) {
  if (precision_ == Precision::kBf16) check_bf16(device_);
}

void Runtime::place(GPT& model) const {
  model->to(device_, torch::kFloat32);
  const bool bf16 = precision_ == Precision::kBf16;
  const auto products = bf16 ? torch::kBFloat16 : torch::kFloat32;
  if (device_.is_cuda()) {
    model->set_attention_kernel(compat::kHasSdpa ? AttentionKernel::kSdpa : AttentionKernel::kTiled, products);
  } else {
    // On the CPU, bf16 products through oneDNN beat the fused kernel's float32 BLAS calls.
    model->set_attention_kernel(bf16 ? AttentionKernel::kTiled : AttentionKernel::kFusedCpu, products);
  }
}

Runtime::PrecisionScope::PrecisionScope(c10::DeviceType device, bool autocast) : device_(device), autocast_(autocast) {
  if (!autocast_) return;
  was_enabled_ = compat::autocast_enabled(device_);
  was_dtype_ = compat::autocast_dtype(device_);
  compat::set_autocast(device_, true, at::kBFloat16);
  at::autocast::increment_nesting();
}

Runtime::PrecisionScope::~PrecisionScope() {
  if (!autocast_) return;
  // Weights cast for this scope are cached until the outermost scope ends, as torch.autocast does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast(device_, was_enabled_, was_dtype_);
}

nlohmann::json Runtime::to_json() const {
  return {{"device", device_.str()}, {"precision", enum_name(kPrecisionNames, precision_)}};
}

}  // namespace extrap
