#pragma once
// Training rows of a synthetic-task dataset (docs/configuration.md, "Task datasets"): each row is
// one whole example, left-aligned at position 0 and padded with end-of-text tokens to the
// training length; its target weights are the answer mask, so padding and prompts carry no loss.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/batch_sampler.h"
#include "data/dataset.h"
#include "model/gpt.h"
#include "parallel/process_group.h"
#include "runtime/runtime.h"

namespace extrap {

// One split's examples (its documents) with their tokens and loss mask.
struct TaskExamples {
  TaskExamples(const Dataset& dataset, const std::string& split);
  const TokenStream& stream;
  const std::vector<uint8_t>& mask;
  std::vector<DocumentEntry> examples;
  int64_t longest() const;  // tokens of the longest example
};

struct MaskedBatch {
  torch::Tensor windows;  // [rows, length + 1] int64: the example, then end-of-text tokens
  torch::Tensor weights;  // [rows, length] float32: target p has the mask of window token p + 1
};

// The examples `rows` (indices into examples.examples) as a batch; every example must have at
// most `length` tokens.
MaskedBatch masked_batch(const TaskExamples& examples, const std::vector<int64_t>& rows, int64_t length);

// Mean NLL over the answer targets of every example, in rows of positions.size() (eval mode,
// batch_size rows per forward; each process scores the batches the sampler deals it).
double masked_validation_loss(GPT& model, const TaskExamples& examples, const Positions& positions,
                              int64_t batch_size, const Runtime& runtime, const BatchSampler& sampler,
                              const ProcessGroup& group);

}  // namespace extrap
