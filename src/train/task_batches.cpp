#include "train/task_batches.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace extrap {

TaskExamples::TaskExamples(const Dataset& dataset, const std::string& split)
    : stream(dataset.split(split)), mask(dataset.mask(split)), examples(dataset.documents(split)) {}

int64_t TaskExamples::longest() const {
  int64_t longest = 0;
  for (const auto& e : examples) longest = std::max(longest, e.tokens);
  return longest;
}

MaskedBatch masked_batch(const TaskExamples& examples, const std::vector<int64_t>& rows, int64_t length) {
  const auto count = int64_t(rows.size());
  auto windows = torch::full({count, length + 1}, int64_t(kEndOfText), torch::kInt64);
  auto weights = torch::zeros({count, length}, torch::kFloat32);
  auto* tokens = windows.data_ptr<int64_t>();
  auto* weight = weights.data_ptr<float>();
  for (int64_t r = 0; r < count; ++r) {
    const DocumentEntry& example = examples.examples.at(rows[r]);
    if (example.tokens > length) throw std::logic_error("masked_batch: an example is longer than the row");
    for (int64_t t = 0; t < example.tokens; ++t) {
      tokens[r * (length + 1) + t] = examples.stream[example.offset + t];
      if (t > 0) weight[r * length + t - 1] = examples.mask[example.offset + t];
    }
  }
  return {windows, weights};
}

double masked_validation_loss(GPT& model, const TaskExamples& examples, const Positions& positions,
                              int64_t batch_size, const Runtime& runtime, const BatchSampler& sampler,
                              const ProcessGroup& group) {
  const int64_t length = positions.size();
  torch::NoGradGuard no_grad;
  const auto precision = runtime.precision_scope();
  model->eval();
  double total = 0, count = 0;
  for (int64_t begin = 0; begin < int64_t(examples.examples.size()); begin += batch_size) {
    if (!sampler.owns(begin / batch_size)) continue;
    std::vector<int64_t> rows(std::min<int64_t>(batch_size, int64_t(examples.examples.size()) - begin));
    std::iota(rows.begin(), rows.end(), begin);
    const MaskedBatch batch = masked_batch(examples, rows, length);
    const auto windows = batch.windows.to(runtime.device());
    const auto weights = batch.weights.to(runtime.device()).reshape({-1});
    const auto logits = model->forward(windows.slice(1, 0, length), positions);
    const auto nll = torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                               windows.slice(1, 1, length + 1).reshape({-1}), {}, at::Reduction::None);
    total += (nll * weights).sum().item<double>();
    count += weights.sum().item<double>();
  }
  model->train();
  return group.sum(total) / group.sum(count);
}

}  // namespace extrap
