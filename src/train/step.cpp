#include "train/step.h"

#include <cmath>
#include <limits>

namespace extrap {

StepResult train_step(GPT& model, AdamW& optimizer, const torch::Tensor& windows, const Positions& positions,
                      double lr, double grad_clip, const Runtime& runtime, const torch::Tensor& target_weights,
                      const DocumentOptions& documents) {
  const int64_t length = windows.size(1) - 1;
  torch::Tensor loss;
  {
    const auto precision = runtime.precision_scope();
    const auto output = model->forward(windows.slice(1, 0, length), positions, documents);  // float32
    const auto logits = output.reshape({-1, output.size(-1)});
    const auto targets = windows.slice(1, 1, length + 1).reshape({-1});
    if (!target_weights.defined()) {
      loss = torch::cross_entropy_loss(logits, targets);
    } else {
      const auto weights = target_weights.reshape({-1});
      loss = (torch::cross_entropy_loss(logits, targets, {}, at::Reduction::None) * weights).sum() / weights.sum();
    }
  }
  StepResult result;
  result.loss = loss.item<double>();
  if (!std::isfinite(result.loss)) return result;
  optimizer.zero_grad();
  loss.backward();
  // An infinite limit measures the norm without clipping.
  result.grad_norm = torch::nn::utils::clip_grad_norm_(
      optimizer.parameters(), grad_clip > 0 ? grad_clip : std::numeric_limits<double>::infinity());
  if (!std::isfinite(result.grad_norm)) return result;
  optimizer.step(lr);
  model->after_optimizer_step();
  result.applied = true;
  return result;
}

}  // namespace extrap
