#include "train/step.h"

#include <cmath>
#include <limits>

namespace extrap {

namespace {

// The loss whose gradient this process contributes: the batch mean with one process; with several,
// this share's sum over the global batch's denominator (target count or answer weights).
torch::Tensor share_loss(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& target_weights,
                         const ProcessGroup& group) {
  if (!group.distributed()) {
    if (!target_weights.defined()) return torch::cross_entropy_loss(logits, targets);
    const auto weights = target_weights.reshape({-1});
    return (torch::cross_entropy_loss(logits, targets, {}, at::Reduction::None) * weights).sum() / weights.sum();
  }
  const auto per_target = torch::cross_entropy_loss(logits, targets, {}, at::Reduction::None);
  if (!target_weights.defined()) return per_target.sum() / double(targets.numel() * group.size());
  const auto weights = target_weights.reshape({-1});
  return (per_target * weights).sum() / group.sum(weights.sum().item<double>());
}

}  // namespace

StepResult train_step(GPT& model, AdamW& optimizer, const torch::Tensor& windows, const Positions& positions,
                      double lr, double grad_clip, const Runtime& runtime, const torch::Tensor& target_weights,
                      const DocumentOptions& documents, const ProcessGroup& group) {
  const int64_t length = windows.size(1) - 1;
  torch::Tensor loss;
  {
    const auto precision = runtime.precision_scope();
    const auto output = model->forward(windows.slice(1, 0, length), positions, documents);  // float32
    loss = share_loss(output.reshape({-1, output.size(-1)}), windows.slice(1, 1, length + 1).reshape({-1}),
                      target_weights, group);
  }
  StepResult result;
  result.loss = group.sum(loss.item<double>());  // the same on every process: all stop together if non-finite
  if (!std::isfinite(result.loss)) return result;
  optimizer.zero_grad();
  loss.backward();
  all_reduce_gradients(optimizer.parameters(), group);
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
