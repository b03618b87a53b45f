#include "train/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "common/error.h"

namespace extrap {

namespace {
// Matrices decay (weights, embeddings, tables); vectors and biases do not, including attention's
// [2, H, 1, hd] qk_bias, whose shape alone would make it look like a matrix.
bool decays(const std::string& name, const torch::Tensor& param) {
  const std::string suffix = "bias";
  const bool is_bias = name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return param.dim() >= 2 && !is_bias;
}
}  // namespace

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> named_parameters, AdamWOptions options)
    : options_(options) {
  for (auto& [name, param] : named_parameters) {
    slots_.push_back({name, param, torch::zeros_like(param), torch::zeros_like(param), decays(name, param)});
  }
}

// Gradients are dropped rather than zeroed: backward then writes fresh ones instead of adding to zeros.
void AdamW::zero_grad() {
  for (auto& slot : slots_) slot.param.mutable_grad() = torch::Tensor();
}

std::vector<torch::Tensor> AdamW::parameters() const {
  std::vector<torch::Tensor> params;
  for (const auto& slot : slots_) params.push_back(slot.param);
  return params;
}

// The same update as the tensor-op version below, one read and write of each tensor instead of seven.
void AdamW::update_in_one_pass(Slot& slot, const torch::Tensor& grad, double decay, double step_size,
                               double inv_sqrt_correction2) {
  float* p = slot.param.data_ptr<float>();
  float* m = slot.exp_avg.data_ptr<float>();
  float* v = slot.exp_avg_sq.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  const float b1 = float(options_.beta1), b2 = float(options_.beta2), eps = float(options_.eps);
  const float keep = float(decay), step = float(step_size), inv_c2 = float(inv_sqrt_correction2);
  at::parallel_for(0, slot.param.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] = p[i] * keep - step * m[i] / (std::sqrt(v[i]) * inv_c2 + eps);
    }
  });
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, double(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, double(steps_));
  for (auto& slot : slots_) {
    const auto& grad = slot.param.grad();
    if (!grad.defined()) continue;
    const double decay = slot.decay ? 1.0 - lr * options_.weight_decay : 1.0;
    if (slot.param.is_cpu() && slot.param.scalar_type() == torch::kFloat32 && grad.is_contiguous()) {
      update_in_one_pass(slot, grad, decay, lr / correction1, 1.0 / std::sqrt(correction2));
      continue;
    }
    slot.param.mul_(decay);
    slot.exp_avg.mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    slot.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    auto denominator = (slot.exp_avg_sq.sqrt() / std::sqrt(correction2)).add_(options_.eps);
    slot.param.addcdiv_(slot.exp_avg, denominator, -lr / correction1);
  }
}

TensorMap AdamW::state() const {
  TensorMap state;
  for (const auto& slot : slots_) {
    state["exp_avg." + slot.name] = slot.exp_avg;
    state["exp_avg_sq." + slot.name] = slot.exp_avg_sq;
  }
  state["step"] = torch::tensor({steps_}, torch::kInt64);
  return state;
}

void AdamW::load_state(const TensorMap& state, const std::string& source) {
  const TensorMap expected = this->state();
  for (const auto& [key, tensor] : state) {
    if (expected.count(key) == 0) throw UserError(source + ": optimizer state " + key + " belongs to no parameter of this model");
  }
  auto fetch = [&](const std::string& key) {
    auto it = state.find(key);
    if (it == state.end() || it->second.sizes() != expected.at(key).sizes()) {
      throw UserError(source + ": optimizer state " + key + " is missing or has the wrong shape");
    }
    return it->second;
  };
  torch::NoGradGuard no_grad;
  for (auto& slot : slots_) {
    slot.exp_avg.copy_(fetch("exp_avg." + slot.name));
    slot.exp_avg_sq.copy_(fetch("exp_avg_sq." + slot.name));
  }
  steps_ = fetch("step").item<int64_t>();
}

}  // namespace extrap
