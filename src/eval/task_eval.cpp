#include "eval/task_eval.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "common/error.h"
#include "common/stats.h"
#include "eval/treatment.h"
#include "position/sampling.h"

namespace extrap {
namespace {

LengthRange json_range(const nlohmann::json& pair) { return {pair.at(0).get<int64_t>(), pair.at(1).get<int64_t>()}; }

// Ends of `bins` equal-width bins over (low - 1, high].
std::vector<int64_t> equal_width_ends(int64_t low, int64_t high, int64_t bins) {
  std::vector<int64_t> ends;
  const int64_t span = high - low + 1;
  for (int64_t k = 1; k <= bins; ++k) {
    const int64_t end = low - 1 + (span * k + bins - 1) / bins;
    if (ends.empty() || end > ends.back()) ends.push_back(end);
  }
  return ends;
}

// Per-example sums over the answer targets of one group of equal-length examples.
struct AnswerTotals {
  std::vector<double> nll, correct, count;
  explicit AnswerTotals(std::size_t examples) : nll(examples), correct(examples), count(examples) {}
};

// Scores examples `group` (all of `tokens` tokens) into `totals`: windows of tokens - 1 inputs,
// targets where the mask marks an answer token. Dynamic scaling rebuilds the model per piece.
void score_group(const ModelFactory& make_model, const std::vector<int64_t>& group, int64_t tokens,
                 const TaskScoring& scoring, AnswerTotals& totals) {
  const int64_t length = tokens - 1;
  const auto positions = evaluation_positions(scoring.context.sampling, length, scoring.context.runtime.device());
  const auto rows = int64_t(group.size());
  auto batch = torch::empty({rows, tokens}, torch::kInt64);
  auto weights = torch::zeros({rows, length}, torch::kFloat64);
  auto* token_out = batch.data_ptr<int64_t>();
  auto* weight_out = weights.data_ptr<double>();
  for (int64_t r = 0; r < rows; ++r) {
    const DocumentEntry& example = scoring.examples.examples[group[r]];
    for (int64_t t = 0; t < tokens; ++t) {
      token_out[r * tokens + t] = scoring.examples.stream[example.offset + t];
      if (t > 0) weight_out[r * length + t - 1] = scoring.examples.mask[example.offset + t];
    }
  }
  auto nll = torch::zeros({rows, length}, torch::kFloat64), correct = torch::zeros({rows, length}, torch::kFloat64);
  const int64_t per_batch = std::max<int64_t>(1, scoring.context.batch_tokens / length);
  int64_t begin = 0;
  for (int64_t end : context_ends(length, scoring.context.train_length, scoring.context.dynamic_step)) {
    GPT model = make_model(end);
    for (int64_t b = 0; b < rows; b += per_batch) {
      if (!scoring.context.owns(b / per_batch)) continue;  // another process scores these rows
      const int64_t count = std::min(per_batch, rows - b);
      const auto windows = batch.slice(0, b, b + count).to(scoring.context.runtime.device());
      torch::Tensor logits;
      {
        const auto precision = scoring.context.runtime.precision_scope();
        logits = model->forward(windows.slice(1, 0, end), positions.prefix(end)).slice(1, begin, end);
      }
      const auto targets = windows.slice(1, begin + 1, end + 1);
      const auto piece_nll = -torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
      nll.slice(0, b, b + count).slice(1, begin, end) = piece_nll.to(torch::kCPU, torch::kFloat64);
      correct.slice(0, b, b + count).slice(1, begin, end) = (logits.argmax(-1) == targets).to(torch::kCPU, torch::kFloat64);
    }
    begin = end;
  }
  scoring.context.sum_({nll, correct});  // each row was scored by one process: the sums are exact
  const auto example_nll = (nll * weights).sum(1), example_correct = (correct * weights).sum(1), example_count = weights.sum(1);
  for (int64_t r = 0; r < rows; ++r) {
    totals.nll[r] = example_nll[r].item<double>();
    totals.correct[r] = example_correct[r].item<double>();
    totals.count[r] = example_count[r].item<double>();
  }
}

nlohmann::json unsupported(const std::string& why) { return {{"status", "unsupported"}, {"error", why}}; }

}  // namespace

std::vector<std::pair<int64_t, int64_t>> task_bin_ranges(const std::vector<int64_t>& upper_ends, LengthRange range,
                                                         int64_t train_high) {
  std::vector<int64_t> ends = upper_ends;
  if (ends.empty()) {
    const bool split_at_train = range.low <= train_high && train_high < range.high;
    if (split_at_train) ends.push_back(train_high);
    const auto rest = equal_width_ends(split_at_train ? train_high + 1 : range.low, range.high, kDefaultTaskBins);
    ends.insert(ends.end(), rest.begin(), rest.end());
  }
  std::vector<std::pair<int64_t, int64_t>> bins;
  int64_t low = std::min(range.low, ends.front());
  for (std::size_t i = 0; i < ends.size(); ++i) {
    if (i > 0 && ends[i] <= ends[i - 1]) {
      throw UserError("--lengths: with --protocol task the values are bin upper ends and must ascend (" +
                      std::to_string(ends[i - 1]) + " before " + std::to_string(ends[i]) + ")");
    }
    bins.emplace_back(low, ends[i]);
    low = ends[i] + 1;
  }
  return bins;
}

TaskPlan make_task_plan(const Dataset& dataset, const TaskExamples& examples, const std::string& split,
                        const std::vector<int64_t>& upper_ends) {
  const auto& task = dataset.task();
  TaskPlan plan;
  plan.task = task.at("name").get<std::string>();
  plan.split = split;
  plan.range = json_range(task.at(split == "test" ? "test_lengths" : "train_lengths"));
  plan.trained = json_range(task.at("example_lengths").at("train"));
  for (const auto& [low, high] : task_bin_ranges(upper_ends, plan.range, plan.trained.high)) {
    plan.bins.push_back({low, high, {}});
  }
  for (int64_t i = 0; i < int64_t(examples.examples.size()); ++i) {
    const int64_t tokens = examples.examples[i].tokens;
    for (auto& bin : plan.bins) {
      if (tokens >= bin.low && tokens <= bin.high) bin.examples.push_back(i);
    }
  }
  return plan;
}

nlohmann::json TaskPlan::to_json() const {
  nlohmann::json bins_json = nlohmann::json::array();
  int64_t scored = 0;
  for (const auto& bin : bins) {
    bins_json.push_back({bin.low, bin.high});
    scored += int64_t(bin.examples.size());
  }
  return {{"name", "task"},
          {"task", task},
          {"lengths", {range.low, range.high}},
          {"train_lengths", {trained.low, trained.high}},
          {"bins", bins_json},
          {"examples", scored}};
}

nlohmann::json score_task_bin(const ModelFactory& make_model, const TaskBin& bin, const TaskScoring& scoring) {
  if (bin.examples.empty()) {
    return unsupported("no example has " + std::to_string(bin.low) + " to " + std::to_string(bin.high) + " tokens");
  }
  std::map<int64_t, std::vector<int64_t>> by_length;  // equal lengths share a forward pass
  for (int64_t index : bin.examples) by_length[scoring.examples.examples[index].tokens].push_back(index);
  const int64_t longest = by_length.rbegin()->first;
  if (scoring.context.max_length > 0 && longest - 1 > scoring.context.max_length) {
    return unsupported(scoring.scheme + " positions cover only " + std::to_string(scoring.context.max_length) +
                       " positions; cannot evaluate examples of " + std::to_string(longest) + " tokens");
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t exact = 0;
  double nll = 0, correct = 0, tokens = 0;
  for (const auto& [length, group] : by_length) {
    AnswerTotals totals(group.size());
    score_group(make_model, group, length, scoring, totals);
    for (std::size_t r = 0; r < group.size(); ++r) {
      exact += totals.correct[r] == totals.count[r] ? 1 : 0;
      nll += totals.nll[r];
      correct += totals.correct[r];
      tokens += totals.count[r];
    }
  }
  const auto examples = int64_t(bin.examples.size());
  const auto [ci_low, ci_high] = wilson_interval(exact, examples);
  return {{"status", "ok"},
          {"bin", {bin.low, bin.high}},
          {"example_lengths", {by_length.begin()->first, longest}},
          {"examples", examples},
          {"exact_match", double(exact) / double(examples)},
          {"exact_match_ci", {ci_low, ci_high}},
          {"tokens", int64_t(tokens)},
          {"nll", nll / tokens},
          {"accuracy", correct / tokens},
          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
}

}  // namespace extrap
