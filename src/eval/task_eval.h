#pragma once
// The `task` protocol (docs/results.md, "Task rows"): a synthetic-task dataset's examples scored
// teacher-forced, per bin of example lengths: exact match of whole answers (every answer token
// argmax-correct) with a Wilson 95% interval, and NLL and accuracy per answer token.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tasks.h"
#include "eval/scoring.h"
#include "train/task_batches.h"

namespace extrap {

// An inclusive range [low, high] of example lengths in tokens, and the examples in it.
struct TaskBin {
  int64_t low = 0, high = 0;
  std::vector<int64_t> examples;  // indices into TaskExamples::examples
};

// The bins' inclusive ranges. `upper_ends` (--lengths, ascending) close the bins
// [range.low, e1], [e1 + 1, e2], ...; empty: the in-distribution bin [range.low, train_high] when
// it lies inside the range, then kDefaultTaskBins equal-width bins up to range.high (over the
// whole range when the training lengths are not inside it). Throws UserError for ends that do
// not ascend.
inline constexpr int64_t kDefaultTaskBins = 4;
std::vector<std::pair<int64_t, int64_t>> task_bin_ranges(const std::vector<int64_t>& upper_ends, LengthRange range,
                                                         int64_t train_high);

// The evaluated split's examples sorted into bins (examples above the last bin are left out).
struct TaskPlan {
  std::string task;
  std::string split;
  LengthRange range;       // the split's length range (test: --test-lengths; train, val: --train-lengths)
  LengthRange trained;     // example lengths of the train split, [shortest, longest]
  std::vector<TaskBin> bins;
  nlohmann::json to_json() const;  // the protocols[] entry
};
TaskPlan make_task_plan(const Dataset& dataset, const TaskExamples& examples, const std::string& split,
                        const std::vector<int64_t>& upper_ends);

// What scoring needs besides the model: the examples, and what every scoring pass of a treatment
// shares (evaluation positions, batch size, the dynamic scaling pieces, the scheme's position limit).
struct TaskScoring {
  const TaskExamples& examples;
  const ScoringContext& context;
  std::string scheme;
};

// The result row of one bin (without treatment and protocol): "unsupported" when the bin holds no
// example or examples longer than the scheme can represent.
nlohmann::json score_task_bin(const ModelFactory& make_model, const TaskBin& bin, const TaskScoring& scoring);

}  // namespace extrap
