#pragma once
// Prepared datasets of a synthetic task (docs/data.md, "Task datasets"): one example per document,
// train and val examples from the training length range, test examples from the test range, and a
// loss mask per split marking the answer tokens.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/tasks.h"

namespace extrap {

struct TaskDatasetOptions {
  std::string task;
  std::map<std::string, std::string> params;  // --param KEY=VALUE
  LengthRange train_lengths{1, 40};           // example tokens (prompt + answer) of train and val
  LengthRange test_lengths{1, 160};
  int64_t train_examples = 20000;
  int64_t val_examples = 500;
  int64_t test_examples = 2000;
  uint64_t seed = 0;
  std::filesystem::path output;
};

// Generates the examples and writes the dataset (atomically, as prepare_dataset). Every val and
// test example differs from every train example. Returns the metadata written. Throws UserError
// (before anything is written) for an unknown task or parameter, a length range no example fits,
// a non-positive example count, or a range too small to hold out examples unseen in training.
nlohmann::json prepare_task_dataset(const TaskDatasetOptions& options);

// The first `count` examples of each split of a task dataset, answers in brackets, one a line:
// "train 0 (n=3, 7 tokens): abc|[abc]".
std::string show_task_examples(const Dataset& dataset, int64_t count);

}  // namespace extrap
