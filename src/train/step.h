#pragma once
// One optimizer step, the same for `extrap train` and `extrap bench`: forward, mean cross-entropy,
// backward, gradient clipping, AdamW, then the schemes' post-update projection.
#include <limits>

#include <torch/torch.h>

#include "model/documents.h"
#include "model/gpt.h"
#include "parallel/process_group.h"
#include "runtime/runtime.h"
#include "train/adamw.h"

namespace extrap {

struct StepResult {
  double loss = 0;  // this batch's loss, before the update
  // Global gradient norm before clipping; NaN when the loss was non-finite (no backward ran).
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  // False when the loss or the gradient norm is non-finite: the update was skipped, so the weights
  // and the optimizer state are those from before the step.
  bool applied = false;
};

// windows: [B, T+1] token ids; inputs are [:, :-1], targets [:, 1:]. grad_clip <= 0 measures the
// norm without clipping. The forward runs at the runtime's precision. target_weights: undefined
// for the mean cross-entropy over every target, or [B, T] float32 weights (a task's answer mask):
// the loss is then sum(w * ce) / sum(w), so a target of weight 0 changes neither loss nor gradients.
// documents: how the documents packed into the windows are told apart (off: one sequence each).
// group: with several processes, `windows` is this process's share of the global batch. Each
// process's loss is then its share of the global loss (its sum over the global denominator), the
// gradients are summed across the group before clipping, and the result reports the global loss:
// every process applies the same update, as one process would for the whole batch.
StepResult train_step(GPT& model, AdamW& optimizer, const torch::Tensor& windows, const Positions& positions,
                      double lr, double grad_clip, const Runtime& runtime, const torch::Tensor& target_weights = {},
                      const DocumentOptions& documents = {}, const ProcessGroup& group = {});

}  // namespace extrap
