#include "data/task_dataset.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "common/error.h"
#include "common/random.h"

namespace extrap {
namespace {

using nlohmann::json;

// Consecutive rejections of a held-out example already in the train split before giving up.
constexpr int kHeldOutAttempts = 1000;

struct SplitPlan {
  std::string name;
  LengthRange lengths;
  int64_t examples;
  uint64_t stream_id;  // each split draws from its own seeded stream
};

SplitStream generate_split(const TaskSpec& task, const TaskParams& params, const SplitPlan& plan, uint64_t seed,
                           const std::vector<int64_t>& sizes, std::unordered_set<std::string>& train_texts) {
  SplitMix64 rng(splitmix64(splitmix64(seed ^ 0x7a5cULL) ^ plan.stream_id));
  SplitStream stream;
  const bool held_out = plan.name != "train";
  for (int64_t i = 0; i < plan.examples; ++i) {
    TaskExample example = generate_in_range(task, params, sizes, plan.lengths, rng);
    for (int attempt = 1; held_out && train_texts.count(example.text); ++attempt) {
      if (attempt == kHeldOutAttempts) {
        throw UserError("--" + plan.name + "-examples " + std::to_string(plan.examples) + ": " + std::to_string(kHeldOutAttempts) +
                        " draws in a row were all train examples; widen the length range or train on fewer examples");
      }
      example = generate_in_range(task, params, sizes, plan.lengths, rng);
    }
    if (const auto problem = task.check(example, params); !problem.empty()) {
      throw std::logic_error(std::string(task.name) + " generated an example its checker rejects: " + problem);
    }
    if (!held_out) train_texts.insert(example.text);
    stream.documents.push_back({plan.name, int64_t(stream.tokens.size()), example.tokens(),
                                "n=" + std::to_string(example.size)});
    const auto tokens = encode_bytes(example.text);
    stream.tokens.insert(stream.tokens.end(), tokens.begin(), tokens.end());
    stream.tokens.push_back(kEndOfText);
    stream.mask.insert(stream.mask.end(), example.answer.begin(), example.answer.end());
    stream.mask.push_back(0);
  }
  return stream;
}

json length_span(const SplitStream& stream) {
  int64_t low = 0, high = 0;
  for (const auto& d : stream.documents) {
    low = low == 0 ? d.tokens : std::min(low, d.tokens);
    high = std::max(high, d.tokens);
  }
  return json::array({low, high});
}

}  // namespace

json prepare_task_dataset(const TaskDatasetOptions& options) {
  const TaskSpec& task = find_task(options.task);
  const TaskParams params = resolve_task_params(task, options.params);
  const std::vector<SplitPlan> plans = {{"train", options.train_lengths, options.train_examples, 0},
                                        {"val", options.train_lengths, options.val_examples, 1},
                                        {"test", options.test_lengths, options.test_examples, 2}};
  for (const auto& plan : plans) {
    if (plan.examples < 1) throw UserError("--" + plan.name + "-examples must be at least 1");
  }
  const auto train_sizes = sizes_for_lengths(task, params, options.train_lengths, "--train-lengths");
  const auto test_sizes = sizes_for_lengths(task, params, options.test_lengths, "--test-lengths");

  std::unordered_set<std::string> train_texts;
  std::map<std::string, SplitStream> streams;
  for (const auto& plan : plans) {
    streams[plan.name] = generate_split(task, params, plan, options.seed, plan.name == "test" ? test_sizes : train_sizes,
                                        train_texts);
  }
  json split_lengths = json::object();
  for (const auto& plan : plans) split_lengths[plan.name] = length_span(streams[plan.name]);
  const json description = {
      {"corpus", "task"},
      {"seed", options.seed},
      {"task",
       {{"name", task.name},
        {"params", params},
        {"size", task.size_name},
        {"train_lengths", {options.train_lengths.low, options.train_lengths.high}},
        {"test_lengths", {options.test_lengths.low, options.test_lengths.high}},
        {"example_lengths", split_lengths}}}};
  return write_prepared_dataset(options.output, description, streams);
}

std::string show_task_examples(const Dataset& dataset, int64_t count) {
  std::string out;
  for (const char* split : {"train", "val", "test"}) {
    const auto& stream = dataset.split(split);
    const auto& mask = dataset.mask(split);
    const auto documents = dataset.documents(split);
    for (int64_t i = 0; i < std::min<int64_t>(count, int64_t(documents.size())); ++i) {
      const auto& d = documents[i];
      std::string text;
      for (int64_t t = 0; t < d.tokens; ++t) text += char(stream[d.offset + t]);
      const std::vector<uint8_t> answer(mask.begin() + d.offset, mask.begin() + d.offset + d.tokens);
      out += std::string(split) + " " + std::to_string(i) + " (" + d.name + ", " + std::to_string(d.tokens) +
             " tokens): " + render_task_example(text, answer) + "\n";
    }
  }
  return out;
}

}  // namespace extrap
