#include "train/adamw.h"

#include <cmath>

#include "common/error.h"

namespace extrap {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> named_parameters, AdamWOptions options)
    : options_(options) {
  for (auto& [name, param] : named_parameters) {
    slots_.push_back({name, param, torch::zeros_like(param), torch::zeros_like(param), param.dim() >= 2});
  }
}

void AdamW::zero_grad() {
  for (auto& slot : slots_) {
    if (slot.param.grad().defined()) slot.param.mutable_grad().zero_();
  }
}

std::vector<torch::Tensor> AdamW::parameters() const {
  std::vector<torch::Tensor> params;
  for (const auto& slot : slots_) params.push_back(slot.param);
  return params;
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, double(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, double(steps_));
  for (auto& slot : slots_) {
    const auto& grad = slot.param.grad();
    if (!grad.defined()) continue;
    if (slot.decay && options_.weight_decay > 0) slot.param.mul_(1.0 - lr * options_.weight_decay);
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
  auto fetch = [&](const std::string& key, const torch::Tensor& like) {
    auto it = state.find(key);
    if (it == state.end() || it->second.sizes() != like.sizes()) {
      throw UserError(source + ": optimizer state " + key + " is missing or has the wrong shape");
    }
    return it->second;
  };
  torch::NoGradGuard no_grad;
  for (auto& slot : slots_) {
    slot.exp_avg.copy_(fetch("exp_avg." + slot.name, slot.exp_avg));
    slot.exp_avg_sq.copy_(fetch("exp_avg_sq." + slot.name, slot.exp_avg_sq));
  }
  steps_ = fetch("step", torch::zeros({1})).item<int64_t>();
}

}  // namespace extrap
