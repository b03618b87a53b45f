#include "eval/evaluator.h"

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/files.h"
#include "common/runtime.h"
#include "common/version.h"
#include "config/config.h"
#include "data/dataset.h"
#include "eval/protocol.h"
#include "model/gpt.h"
#include "report/results.h"
#include "train/checkpoint.h"

namespace extrap {
namespace {

constexpr int64_t kEvalAttentionBlock = 256;

// Per-position sums over every scored target of one length.
struct PositionTotals {
  torch::Tensor nll, correct, count;  // [length], float64
  explicit PositionTotals(int64_t length)
      : nll(torch::zeros({length}, torch::kFloat64)),
        correct(torch::zeros({length}, torch::kFloat64)),
        count(torch::zeros({length}, torch::kFloat64)) {}
};

nlohmann::json summarize(const torch::Tensor& nll, const torch::Tensor& correct, const torch::Tensor& count) {
  const double tokens = count.sum().item<double>();
  if (tokens == 0) return {{"tokens", 0}};
  const double mean_nll = nll.sum().item<double>() / tokens;
  return {{"tokens", int64_t(tokens)},
          {"nll", mean_nll},
          {"ppl", std::exp(mean_nll)},
          {"bits_per_byte", mean_nll / std::log(2.0)},
          {"accuracy", correct.sum().item<double>() / tokens}};
}

void score_batch(GPT& model, const std::vector<uint16_t>& stream, const std::vector<EvalWindow>& windows,
                 int64_t length, const Positions& positions, const torch::Device& device, PositionTotals& totals) {
  const int64_t rows = int64_t(windows.size());
  auto batch = torch::empty({rows, length + 1}, torch::kInt64);
  auto mask = torch::zeros({rows, length}, torch::kFloat64);
  auto* out = batch.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t <= length; ++t) out[r * (length + 1) + t] = stream[windows[r].start + t];
    mask[r].slice(0, windows[r].score_from, length).fill_(1.0);
  }
  batch = batch.to(device);
  auto logits = model->forward(batch.slice(1, 0, length), positions);
  auto targets = batch.slice(1, 1, length + 1);
  auto nll = -torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  auto correct = (logits.argmax(-1) == targets);
  totals.nll += (nll.to(torch::kCPU, torch::kFloat64) * mask).sum(0);
  totals.correct += (correct.to(torch::kCPU, torch::kFloat64) * mask).sum(0);
  totals.count += mask.sum(0);
}

nlohmann::json evaluate_length(GPT& model, const std::vector<uint16_t>& stream, int64_t tokens, int64_t length,
                               int64_t train_length, int64_t batch_tokens, const torch::Device& device) {
  const auto windows = nonoverlap_windows(tokens, length);
  const auto positions = Positions::arange(length, device);
  const int64_t per_batch = std::max<int64_t>(1, batch_tokens / length);
  PositionTotals totals(length);
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t b = 0; b < windows.size(); b += per_batch) {
    std::vector<EvalWindow> chunk(windows.begin() + b, windows.begin() + std::min(windows.size(), b + per_batch));
    score_batch(model, stream, chunk, length, positions, device, totals);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  nlohmann::json result = summarize(totals.nll, totals.correct, totals.count);
  result["length"] = length;
  result["status"] = "ok";
  result["windows"] = int64_t(windows.size());
  result["seconds"] = seconds;
  result["tokens_per_s"] = double(tokens) / seconds;
  result["peak_rss_mib"] = peak_rss_mib();
  if (length > train_length) {
    const int64_t n = length - train_length;
    result["beyond_train"] = summarize(totals.nll.slice(0, train_length).narrow(0, 0, n),
                                       totals.correct.slice(0, train_length).narrow(0, 0, n),
                                       totals.count.slice(0, train_length).narrow(0, 0, n));
  }
  nlohmann::json buckets = nlohmann::json::array();
  for (const auto& [begin, end] : position_buckets(length)) {
    nlohmann::json bucket = summarize(totals.nll.slice(0, begin, end), totals.correct.slice(0, begin, end),
                                      totals.count.slice(0, begin, end));
    bucket["begin"] = begin;
    bucket["end"] = end;
    buckets.push_back(bucket);
  }
  result["position_buckets"] = buckets;
  return result;
}

}  // namespace

nlohmann::json evaluate(const EvalOptions& options) {
  const fs::path config_file = options.run_dir / "config.json";
  if (!fs::exists(config_file)) throw UserError(options.run_dir.string() + ": not a run directory (no config.json)");
  const RunConfig config = config_from_json(read_json_file(config_file), config_file.string());
  const auto checkpoint = latest_checkpoint(options.run_dir);
  if (!checkpoint) throw UserError(options.run_dir.string() + ": no checkpoint to evaluate (train it first)");
  if (options.lengths.empty()) throw UserError("eval: --lengths is empty");
  for (int64_t length : options.lengths) {
    if (length <= 0) throw UserError("eval: --lengths: " + std::to_string(length) + " is not a positive length");
  }
  if (options.max_tokens <= 0) throw UserError("eval: --max-tokens must be positive");

  const fs::path dataset_dir = options.dataset.empty() ? fs::path(config.data.dataset) : options.dataset;
  const Dataset dataset = Dataset::load(dataset_dir);
  const auto& stream = dataset.split(options.split);
  const int64_t tokens = std::min<int64_t>(options.max_tokens, int64_t(stream.size()) - 1);
  const torch::Device device = resolve_device(options.device);

  torch::NoGradGuard no_grad;
  GPT model = build_model(config);
  const TrainingState state = load_checkpoint(*checkpoint, model, nullptr);
  model->to(device);
  model->eval();
  model->set_attention_block(kEvalAttentionBlock);

  std::string trained_on;
  if (fs::exists(options.run_dir / "run.json")) {
    trained_on = read_json_file(options.run_dir / "run.json").at("dataset").value("checksum", "");
  }
  nlohmann::json results = nlohmann::json::array();
  for (int64_t length : options.lengths) {
    nlohmann::json entry;
    if (model->max_length() > 0 && length > model->max_length()) {
      entry = {{"length", length}, {"status", "unsupported"},
               {"error", config.position.scheme + " positions cover only " + std::to_string(model->max_length()) +
                             " positions; cannot evaluate length " + std::to_string(length)}};
    } else if (length > tokens) {
      entry = {{"length", length}, {"status", "unsupported"},
               {"error", "the " + options.split + " split has only " + std::to_string(tokens) +
                             " scorable tokens, fewer than the length"}};
    } else {
      entry = evaluate_length(model, stream, tokens, length, config.data.train_length, options.batch_tokens, device);
    }
    spdlog::info("{} | length {:>6} | {}", config.name, length, describe_result(entry));
    results.push_back(entry);
  }

  nlohmann::json document = {
      {"schema", kResultsSchema},
      {"tool", {{"name", "extrap"}, {"version", kVersion}, {"git_commit", kGitCommit}}},
      {"created", utc_timestamp()},
      {"run", {{"dir", options.run_dir.string()}, {"name", config.name}, {"checkpoint_step", state.step},
               {"finished", run_is_done(options.run_dir)}, {"config", config.resolved}}},
      {"data", {{"dataset", dataset_dir.string()}, {"checksum", dataset.checksum()}, {"split", options.split},
                {"split_tokens", int64_t(stream.size())}, {"trained_on_same_dataset", trained_on == dataset.checksum()}}},
      {"protocol", {{"name", "nonoverlap"}, {"tokens_scored", tokens}, {"max_tokens", options.max_tokens},
                    {"train_length", config.data.train_length}}},
      {"device", options.device},
      {"threads", torch::get_num_threads()},
      {"results", results}};
  const fs::path out = options.out.empty() ? options.run_dir / "results" / "eval.json" : options.out;
  write_json_atomic(out, document);
  spdlog::info("results written to {}", out.string());
  return document;
}

}  // namespace extrap
