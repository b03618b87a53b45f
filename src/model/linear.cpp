#include "model/linear.h"

#include <ATen/Parallel.h>

#include "model/blas.h"

namespace extrap {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  // The bias is optional (an undefined tensor argument would break autograd's bookkeeping).
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               c10::optional<torch::Tensor> bias) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["has_bias"] = bias.has_value();
    return torch::linear(x, weight, bias ? *bias : torch::Tensor());  // one addmm with the bias fused
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& weight = saved[1];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t in = weight.size(1), out = weight.size(0);
    const auto x = saved[0].reshape({-1, in}).contiguous();
    const auto grad = grad_outputs[0].reshape({-1, out}).contiguous();
    const auto w = weight.contiguous();
    const int64_t rows = x.size(0);
    auto grad_x = torch::empty({rows, in}, x.options());
    auto grad_w = torch::empty({out, in}, w.options());
    torch::Tensor grad_b;
    at::parallel_for(0, 2, 1, [&](int64_t first, int64_t last) {
      for (int64_t task = first; task < last; ++task) {
        if (task == 0) {  // dX = dY W, and db = column sums of dY on the same core
          gemm(false, false, rows, in, out, 1.0f, grad.data_ptr<float>(), out, w.data_ptr<float>(), in, 0.0f,
               grad_x.data_ptr<float>(), in);
          if (has_bias) grad_b = grad.sum(0);
        } else {  // dW = dY^T X
          gemm(true, false, out, in, rows, 1.0f, grad.data_ptr<float>(), out, x.data_ptr<float>(), in, 0.0f,
               grad_w.data_ptr<float>(), in);
        }
      }
    });
    return {grad_x.view(saved[0].sizes()), grad_w, grad_b};
  }
};

}  // namespace

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const bool custom = x.is_cpu() && x.scalar_type() == torch::kFloat32 && torch::GradMode::is_enabled() &&
                      (x.requires_grad() || weight.requires_grad());
  if (!custom) return torch::linear(x, weight, bias);
  return LinearFunction::apply(x, weight, bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt);
}

void init_linear(const torch::nn::Linear& layer, double std) {
  torch::NoGradGuard no_grad;
  layer->weight.normal_(0.0, std);
  if (layer->bias.defined()) layer->bias.zero_();
}

}  // namespace extrap
