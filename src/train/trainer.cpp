#include "train/trainer.h"

#include <spdlog/sinks/basic_file_sink.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "common/process.h"
#include "common/random.h"
#include "runtime/runtime.h"
#include "common/text.h"
#include "common/version.h"
#include "config/config.h"
#include "data/batch_sampler.h"
#include "data/dataset.h"
#include "model/gpt.h"
#include "parallel/process_group.h"
#include "position/sampling.h"
#include "train/checkpoint.h"
#include "common/interrupt.h"
#include "train/schedule.h"
#include "train/step.h"
#include "train/task_batches.h"

namespace extrap {
namespace {

using Clock = std::chrono::steady_clock;

// For the duration of a training run: log to RUN/train.log too (rank 0, the one that writes the
// run directory), and turn SIGINT/SIGTERM into a checkpoint-and-exit request. Both are undone when
// the run ends, however it ends.
class RunSession {
 public:
  RunSession(const fs::path& run_dir, bool writes_log)
      : sink_(writes_log ? std::make_shared<spdlog::sinks::basic_file_sink_mt>((run_dir / "train.log").string())
                         : nullptr) {
    if (sink_) spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~RunSession() {
    if (!sink_) return;
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;

  int signal_received() const { return interrupts_.received(); }

 private:
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink_;
  InterruptGuard interrupts_;
};

std::string format_duration(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  std::ostringstream out;
  if (total >= 3600) out << total / 3600 << "h";
  if (total >= 60) out << (total % 3600) / 60 << "m";
  out << total % 60 << "s";
  return out.str();
}

// [rows, length + 1] windows of the token stream; inputs are [:, :-1], targets [:, 1:].
torch::Tensor gather_windows(const TokenStream& stream, const std::vector<int64_t>& offsets, int64_t length) {
  auto batch = torch::empty({int64_t(offsets.size()), length + 1}, torch::kInt64);
  auto* out = batch.data_ptr<int64_t>();
  for (std::size_t r = 0; r < offsets.size(); ++r) stream.copy(offsets[r], length + 1, out + r * (length + 1));
  return batch;
}

// Mean next-token loss over consecutive windows of the validation stream (fixed, so comparable
// across steps and runs). Each process scores the batches the sampler deals it.
double validation_loss(GPT& model, const TokenStream& stream, const Positions& positions,
                       const DocumentOptions& documents, int64_t batch_size, int64_t max_tokens, const Runtime& runtime,
                       const BatchSampler& sampler, const ProcessGroup& group) {
  const int64_t length = positions.size();
  torch::NoGradGuard no_grad;
  const auto precision = runtime.precision_scope();
  model->eval();
  std::vector<int64_t> offsets;
  // At least one window, even when max_tokens < length.
  for (int64_t o = 0; o + length + 1 <= int64_t(stream.size()) && (offsets.empty() || o + length <= max_tokens);
       o += length) {
    offsets.push_back(o);
  }
  double total = 0;
  int64_t count = 0;
  for (std::size_t b = 0; b < offsets.size(); b += batch_size) {
    std::vector<int64_t> chunk(offsets.begin() + b, offsets.begin() + std::min(offsets.size(), b + batch_size));
    count += int64_t(chunk.size()) * length;
    if (!sampler.owns(int64_t(b) / batch_size)) continue;
    auto windows = gather_windows(stream, chunk, length).to(runtime.device());
    auto logits = model->forward(windows.slice(1, 0, length), positions, documents);
    auto loss = torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                          windows.slice(1, 1, length + 1).reshape({-1}),
                                          /*weight=*/{}, at::Reduction::Sum);
    total += loss.item<double>();
  }
  model->train();
  return group.sum(total) / double(count);
}

// A task dataset's training examples must fit the rows, and its test examples the positions the
// scheme can represent: both are known before any training.
void check_task_lengths(const RunConfig& config, const Dataset& dataset) {
  const int64_t longest = std::max(TaskExamples(dataset, "train").longest(), TaskExamples(dataset, "val").longest());
  if (config.data.train_length < longest) {
    throw UserError("data.train_length " + std::to_string(config.data.train_length) +
                    " is shorter than the longest training example of " + config.data.dataset + " (" +
                    std::to_string(longest) + " tokens); every row holds one whole example");
  }
  const int64_t test_positions = TaskExamples(dataset, "test").longest() - 1;  // the last token is only a target
  const int64_t max_length = config.max_length();
  if (max_length > 0 && test_positions > max_length) {
    throw UserError(config.position.scheme + " positions cover only " + std::to_string(max_length) +
                    " positions, but the test examples of " + config.data.dataset + " need " +
                    std::to_string(test_positions) + "; prepare shorter --test-lengths or use a scheme that covers them");
  }
}

// The documents of a text dataset's windows as the config asks. A task dataset's row is one example
// already (what follows it is end-of-text padding, which no answer sees): none there.
DocumentOptions text_documents(const RunConfig& config, const Dataset& dataset) {
  if (dataset.has_task()) return {};
  return document_options(config.data, dataset.metadata(), config.data.dataset);
}

void log_documents(const DataConfig& data, const DocumentOptions& documents) {
  if (documents.active()) {
    spdlog::info("documents open at every end-of-text token (id {}){}{}", documents.end_of_text,
                 documents.reset_positions ? "; positions restart at 0 in each" : "",
                 documents.mask_documents ? "; attention stays inside each" : "");
  } else if (data.reset_positions || data.mask_documents) {
    spdlog::info("data.reset_positions / data.mask_documents: a task dataset's row is one example; not applied");
  }
}

struct RunSetup {
  fs::path run_dir;
  RunConfig config;
};

RunSetup resolve_run(const TrainOptions& options) {
  RunSetup setup;
  std::optional<RunConfig> from_file;
  if (!options.config_path.empty()) from_file = load_config(options.config_path, options.overrides);
  if (!from_file && !options.resume) throw UserError("train: --config is required (or --resume with --out RUN_DIR)");
  if (!from_file && options.out.empty()) throw UserError("train --resume: give --out RUN_DIR or --config");
  setup.run_dir = !options.out.empty() ? options.out : fs::path("runs") / from_file->name;
  const fs::path saved = setup.run_dir / "config.json";

  if (!options.resume) {
    if (fs::exists(saved)) {
      throw UserError(setup.run_dir.string() + ": a run already exists here; use --resume to continue it or --out "
                      "to train into another directory");
    }
    if (fs::exists(setup.run_dir) && !fs::is_empty(setup.run_dir)) {
      throw UserError(setup.run_dir.string() + ": directory exists and is not an extrap run; choose another --out");
    }
    setup.config = *from_file;
    return setup;
  }
  if (!fs::exists(saved)) {
    if (!from_file) throw UserError(saved.string() + ": no run to resume (config.json not found)");
    setup.config = *from_file;  // nothing to resume yet: start it
    return setup;
  }
  setup.config = config_from_json(read_json_file(saved), saved.string());
  if (!from_file && !options.overrides.empty()) {  // --set (or --precision) with --resume --out: checked too
    auto document = read_json_file(saved);
    for (const auto& assignment : options.overrides) apply_override(document, assignment);
    from_file = config_from_json(document, saved.string());
  }
  if (from_file && from_file->resolved != setup.config.resolved) {
    const auto diff = nlohmann::json::diff(setup.config.resolved, from_file->resolved);
    throw UserError((options.config_path.empty() ? std::string("--set") : options.config_path) + ": differs from " +
                    saved.string() + " at " +
                    diff.at(0).at("path").get<std::string>() + "; a resumed run must keep its config");
  }
  return setup;
}

void append_metrics(const fs::path& file, const nlohmann::json& entry) {
  std::ofstream out(file, std::ios::app);
  out << entry.dump() << "\n";
}

// On resume, drop metric lines logged after the checkpoint: those steps are about to be redone. A
// last line that is not a record was cut short by a kill or a power cut while it was appended, so
// it is dropped too; a bad line before the last is corruption that needs a person.
void truncate_metrics(const fs::path& file, int64_t step) {
  if (!fs::exists(file)) return;
  std::vector<std::pair<int, std::string>> lines;  // (line number, text), blank lines left out
  std::istringstream in(read_text_file(file));
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty()) lines.emplace_back(number, line);
  }
  std::string kept;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto& [line_number, text] = lines[i];
    const auto record = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("step") || !record["step"].is_number_integer()) {
      if (i + 1 < lines.size()) {
        throw UserError(file.string() + ": line " + std::to_string(line_number) +
                        " is not a metrics record (corrupt file; fix or delete that line to resume)");
      }
      spdlog::warn("{}: dropped the torn last line {} (written when the run was killed)", file.string(), line_number);
      break;
    }
    if (record["step"].get<int64_t>() <= step) kept += text + "\n";
  }
  write_file_atomic(file, kept);
}

// Stops before the bad update reaches the weights, so the latest checkpoint stays good.
[[noreturn]] void stop_non_finite(const std::string& what, double value, int64_t step, double lr,
                                  const fs::path& run_dir) {
  const auto last = latest_checkpoint(run_dir);
  const std::string message = "non-finite " + what + " (" + format_number(value) + ") at step " +
                              std::to_string(step) + " with lr " + format_number(lr) +
                              "; stopped without applying it; last good checkpoint: " +
                              (last ? last->string() : std::string("none")) + " (lower train.lr or raise warmup)";
  spdlog::error(message);
  throw UserError(message);
}

}  // namespace

void train(const TrainOptions& options) {
  RunSetup setup = resolve_run(options);
  const RunConfig& config = setup.config;
  const fs::path& run_dir = setup.run_dir;
  if (run_is_done(run_dir)) {
    spdlog::info("{}: already finished (DONE); nothing to do", run_dir.string());
    return;
  }
  const Runtime runtime(options.device, config.train.precision);
  const torch::Device& device = runtime.device();
  // The global batch must divide over the processes before any of them waits for the others.
  const LaunchEnv launch = read_launch_env();
  const BatchSampler sampler(config.seed, config.train.batch_size, launch.rank, launch.world_size);
  const ProcessGroup group = join_launcher_group(launch, options.device, options.collective_timeout_s);

  // Everything that can fail on bad input happens before the run directory is touched.
  const Dataset dataset = Dataset::load(config.data.dataset);
  const auto& train_stream = dataset.split("train");
  const auto& val_stream = dataset.split("val");
  const int64_t length = config.data.train_length;
  const int64_t vocab = dataset.metadata().at("tokenizer").at("vocab_size").get<int64_t>();
  if (config.model.vocab_size < vocab) {
    throw UserError("model.vocab_size " + std::to_string(config.model.vocab_size) + " is smaller than the vocabulary of " +
                    config.data.dataset + " (" + std::to_string(vocab) + " ids); set model.vocab_size to at least " +
                    std::to_string(vocab));
  }
  if (dataset.has_task()) {
    check_task_lengths(config, dataset);
  } else if (int64_t(train_stream.size()) < length + 2) {
    throw UserError("data.train_length " + std::to_string(length) + " is longer than the train split of " +
                    config.data.dataset + " (" + std::to_string(train_stream.size()) + " tokens)");
  }
  if (!dataset.has_task() && int64_t(val_stream.size()) < length + 1) {
    throw UserError("data.train_length " + std::to_string(length) + " is longer than the val split of " +
                    config.data.dataset + " (" + std::to_string(val_stream.size()) + " tokens)");
  }

  const DocumentOptions documents = text_documents(config, dataset);

  torch::manual_seed(config.seed);
  GPT model = build_model(config);
  runtime.place(model);
  model->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  const TrainConfig& tc = config.train;
  AdamW optimizer(named, {tc.beta1, tc.beta2, tc.eps, tc.weight_decay});

  // Rank 0 alone writes the run directory; the others wait until it is ready, then read it.
  if (group.is_root()) fs::create_directories(run_dir);
  const RunSession session(run_dir, group.is_root());
  const fs::path metrics_file = run_dir / "metrics.jsonl";
  if (options.resume && group.is_root()) {
    for (const auto& unfinished : remove_unfinished_checkpoints(run_dir)) {
      spdlog::info("removed {}, a checkpoint left unfinished when the run was stopped", unfinished.string());
    }
  }
  group.barrier();
  TrainingState state;
  const auto checkpoint = options.resume ? latest_checkpoint(run_dir) : std::nullopt;
  if (checkpoint) {
    state = load_checkpoint(*checkpoint, model, &optimizer);
    if (group.is_root()) truncate_metrics(metrics_file, state.step);
    spdlog::info("resuming {} from step {}", run_dir.string(), state.step);
    const int64_t saved_world = state.info.value("world_size", int64_t(1));
    if (saved_world != group.size()) {
      spdlog::info("resuming on {} processes (the checkpoint was written by {}): the same global batch of {} windows, "
                   "{} per process; the data are the same, the sums' rounding may differ",
                   group.size(), saved_world, tc.batch_size, sampler.rows_per_process());
    }
  } else if (group.is_root()) {
    write_json_atomic(run_dir / "config.json", config.resolved);
    write_json_atomic(run_dir / "run.json",
                      {{"tool", {{"name", "extrap"}, {"version", kVersion}, {"git_commit", kGitCommit}}},
                       {"created", utc_timestamp()},
                       {"dataset", dataset.identity()},
                       {"device", options.device},
                       {"precision", enum_name(kPrecisionNames, config.train.precision)},
                       {"threads", torch::get_num_threads()},
                       {"world_size", group.size()},
                       {"launcher", group.env().launcher},
                       {"parameters", model->parameter_count()}});
    write_file_atomic(metrics_file, "");
  }
  spdlog::info("run {} | scheme {} | {} parameters | train_length {} | batch {} | {} steps | {} | {} threads{}",
               run_dir.string(), config.position.scheme, model->parameter_count(), length, tc.batch_size, tc.steps,
               enum_name(kPrecisionNames, tc.precision), torch::get_num_threads(),
               group.distributed() ? " x " + std::to_string(group.size()) + " processes" : "");
  log_documents(config.data, documents);

  const int64_t offsets_available = int64_t(train_stream.size()) - length;  // windows need length + 1 tokens
  // Task datasets: rows are whole examples, drawn by the same counter-based hash.
  std::optional<TaskExamples> task_train, task_val;
  if (dataset.has_task()) {
    task_train.emplace(dataset, "train");
    task_val.emplace(dataset, "val");
  }
  const auto session_start = Clock::now();
  auto window_start = session_start;
  int64_t window_tokens = 0;
  const int64_t first_step = state.step;
  // NaN (no validation yet) is stored as JSON null.
  double last_val = state.info.contains("val_loss") && state.info["val_loss"].is_number()
                        ? state.info["val_loss"].get<double>()
                        : std::nan("");
  // Every process holds the same weights and optimizer state: rank 0's checkpoint is complete.
  auto save = [&](int64_t step) {
    state.step = step;
    state.info["val_loss"] = last_val;
    state.info["world_size"] = group.size();
    if (group.is_root()) save_checkpoint(run_dir, model, optimizer, state, config.resolved, tc.keep_checkpoints);
  };

  for (int64_t step = state.step; step < tc.steps; ++step) {
    if (tc.drop_positions > 0) {  // DroPE: positions until drop_from_step, none after
      const bool dropped = step >= tc.drop_from_step();
      if (dropped && (step == tc.drop_from_step() || step == state.step)) {
        spdlog::info("step {}: dropping every position encoding for the last {} steps (DroPE)", step + 1, tc.steps - step);
      }
      model->set_positions_dropped(dropped);
    }
    const double lr = learning_rate(step, tc.steps, tc.warmup_steps, tc.lr, tc.min_lr_ratio);
    std::vector<int64_t> offsets;
    torch::Tensor windows, target_weights;
    if (task_train) {
      const int64_t examples = int64_t(task_train->examples.size());
      offsets = sampler.offsets(step, examples);
      const MaskedBatch batch = masked_batch(*task_train, offsets, length);
      windows = batch.windows.to(device);
      target_weights = batch.weights.to(device);
    } else {
      offsets = sampler.offsets(step, offsets_available);
      windows = gather_windows(train_stream, offsets, length).to(device);
    }
    torch::manual_seed(splitmix64(config.seed + 0x9e37ULL * uint64_t(step + 1)));  // dropout, per step
    const auto positions = training_positions(config.position_sampling, length, config.seed, step, device);
    const StepResult result =
        train_step(model, optimizer, windows, positions, lr, tc.grad_clip, runtime, target_weights, documents, group);
    if (!std::isfinite(result.loss)) stop_non_finite("training loss", result.loss, step + 1, lr, run_dir);
    if (!result.applied) stop_non_finite("gradient norm", result.grad_norm, step + 1, lr, run_dir);
    const double loss_value = result.loss, grad_norm = result.grad_norm;
    const int64_t done = step + 1;
    window_tokens += tc.batch_size * length;

    if (done % tc.log_interval == 0 || done == tc.steps) {
      const auto now = Clock::now();
      const double window_seconds = std::chrono::duration<double>(now - window_start).count();
      const double session_seconds = std::chrono::duration<double>(now - session_start).count();
      const double tokens_per_s = window_tokens / std::max(window_seconds, 1e-9);
      const double eta = session_seconds / double(done - first_step) * double(tc.steps - done);
      spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | {:>7.0f} tok/s | ETA {}", done, tc.steps, loss_value, lr,
                   tokens_per_s, format_duration(eta));
      if (group.is_root()) append_metrics(metrics_file, {{"step", done}, {"loss", loss_value}, {"lr", lr}, {"grad_norm", grad_norm},
                                    {"tokens_per_s", tokens_per_s}, {"elapsed_s", session_seconds}});
      window_start = now;
      window_tokens = 0;
    }
    if (done % tc.eval_interval == 0 || done == tc.steps) {
      const auto val_positions = evaluation_positions(config.position_sampling, length, device);
      last_val = task_val ? masked_validation_loss(model, *task_val, val_positions, tc.batch_size, runtime, sampler, group)
                          : validation_loss(model, val_stream, val_positions, documents, tc.batch_size, tc.eval_tokens,
                                            runtime, sampler, group);
      spdlog::info("step {:>6}/{} | val loss {:.4f} | val ppl {:.2f}", done, tc.steps, last_val, std::exp(last_val));
      if (group.is_root()) append_metrics(metrics_file, {{"step", done}, {"val_loss", last_val}});
    }
    if (done % tc.checkpoint_interval == 0 || done == tc.steps) save(done);
    // A signal to any process stops them all after this step, with one checkpoint.
    const int signal_number = session.signal_received();
    if (group.any(signal_number != 0) && done < tc.steps) {
      if (done % tc.checkpoint_interval != 0 && done != tc.steps) save(done);
      group.barrier();  // the checkpoint is on disk before any process exits (a launcher then stops the rest)
      spdlog::warn("signal {} received{}: checkpoint at step {} written to {}; continue with --resume",
                   signal_number != 0 ? signal_number : SIGTERM, signal_number != 0 ? "" : " by another process",
                   done, run_dir.string());
      throw Interrupted(signal_number != 0 ? signal_number : SIGTERM);
    }
  }
  if (group.is_root()) {
    write_json_atomic(run_dir / "DONE", {{"step", tc.steps}, {"val_loss", last_val}, {"finished", utc_timestamp()}});
  }
  group.barrier();
  spdlog::info("done: {} steps, final val loss {:.4f}", tc.steps, last_val);
}

}  // namespace extrap
