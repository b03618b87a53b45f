#pragma once
// The one place that knows the differences between LibTorch 1.13 (Debian) and 2.x (inside a
// PyTorch install), and between builds with and without CUDA. Everything else calls these.
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#define EXTRAP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace extrap::compat {

// Autocast for one device type: 2.4 made the setters take a device type; 1.13 has one per device.
inline void set_autocast(c10::DeviceType device, bool enabled, at::ScalarType dtype) {
#if EXTRAP_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

inline bool autocast_enabled(c10::DeviceType device) {
#if EXTRAP_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if EXTRAP_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype()
                                        : at::autocast::get_autocast_gpu_dtype();
#endif
}

// scaled_dot_product_attention with an explicit scale (2.1 and later). mask: boolean, true where a
// query may attend (undefined: none).
inline constexpr bool kHasSdpa = EXTRAP_TORCH_AT_LEAST(2, 1);
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                  const torch::Tensor& mask, double dropout, bool is_causal,
                                                  double scale) {
#if EXTRAP_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<torch::Tensor>(mask) : c10::nullopt,
                                          dropout, is_causal, scale);
#else
  TORCH_CHECK(false, "scaled_dot_product_attention needs LibTorch 2.1 or later");
#endif
}

}  // namespace extrap::compat
