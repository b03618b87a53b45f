#include "eval/evaluator.h"

#include <chrono>
#include <cmath>
#include <functional>

#include "common/error.h"
#include "common/files.h"
#include "common/process.h"
#include "runtime/runtime.h"
#include "common/version.h"
#include "config/config.h"
#include "data/dataset.h"
#include "eval/probe_scoring.h"
#include "eval/probe_tokens.h"
#include "eval/protocol.h"
#include "eval/scoring.h"
#include "eval/task_eval.h"
#include "eval/treatment.h"
#include "model/gpt.h"
#include "position/sampling.h"
#include "report/results.h"
#include "report/tables.h"
#include "train/checkpoint.h"

namespace extrap {
namespace {

constexpr int64_t kEvalAttentionBlock = 256;

// Per-position sums over every scored target of one length. `bytes` sums the text bytes each
// target token stands for, so bits per byte = nats / ln 2 / bytes whatever the tokenizer.
struct PositionTotals {
  torch::Tensor nll, correct, count, bytes;  // [length], float64
  explicit PositionTotals(int64_t length)
      : nll(torch::zeros({length}, torch::kFloat64)),
        correct(torch::zeros({length}, torch::kFloat64)),
        count(torch::zeros({length}, torch::kFloat64)),
        bytes(torch::zeros({length}, torch::kFloat64)) {}
};

// bits_per_byte is null when the tokenizer does not know its tokens' byte lengths.
nlohmann::json summarize(const torch::Tensor& nll, const torch::Tensor& correct, const torch::Tensor& count,
                         const torch::Tensor& bytes, bool bytes_known) {
  const double tokens = count.sum().item<double>();
  if (tokens == 0) return {{"tokens", 0}};
  const double total_nll = nll.sum().item<double>(), total_bytes = bytes.sum().item<double>();
  const double mean_nll = total_nll / tokens;
  return {{"tokens", int64_t(tokens)},
          {"bytes", bytes_known ? nlohmann::json(int64_t(total_bytes)) : nlohmann::json()},
          {"nll", mean_nll},
          {"ppl", std::exp(mean_nll)},
          {"bits_per_byte", bytes_known && total_bytes > 0 ? nlohmann::json(total_nll / std::log(2.0) / total_bytes)
                                                           : nlohmann::json()},
          {"accuracy", correct.sum().item<double>() / tokens}};
}

// Adds the scored targets among positions [begin, end) of a batch of windows to `totals`, from a
// forward pass over window tokens [0, end) (a prefix of the plan's length).
void score_batch(GPT& model, const std::vector<EvalWindow>& windows, int64_t begin, int64_t end,
                 const Positions& positions, const ScoringContext& context, PositionTotals& totals) {
  const int64_t rows = int64_t(windows.size());
  auto batch = torch::empty({rows, end + 1}, torch::kInt64);
  auto mask = torch::zeros({rows, end - begin}, torch::kFloat64);
  auto* out = batch.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t <= end; ++t) out[r * (end + 1) + t] = context.stream[stream_index(windows[r], t)];
    const int64_t from = std::max(begin, windows[r].score_from);
    if (from < end) mask[r].slice(0, from - begin, end - begin).fill_(1.0);
  }
  batch = batch.to(context.runtime.device());
  torch::Tensor logits;  // float32
  {
    const auto precision = context.runtime.precision_scope();
    logits = model->forward(batch.slice(1, 0, end), positions.prefix(end), context.documents).slice(1, begin, end);
  }
  auto targets = batch.slice(1, begin + 1, end + 1);
  auto nll = -torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  auto correct = (logits.argmax(-1) == targets);
  totals.nll.slice(0, begin, end) += (nll.to(torch::kCPU, torch::kFloat64) * mask).sum(0);
  totals.correct.slice(0, begin, end) += (correct.to(torch::kCPU, torch::kFloat64) * mask).sum(0);
  totals.count.slice(0, begin, end) += mask.sum(0);
  if (!context.token_bytes.empty()) {
    const auto table = torch::tensor(context.token_bytes, torch::kInt32).to(torch::kFloat64);
    totals.bytes.slice(0, begin, end) += (table.index_select(0, targets.cpu().reshape({-1})).view(targets.sizes()) * mask).sum(0);
  }
}

nlohmann::json summarize_positions(const PositionTotals& totals, int64_t begin, int64_t end, bool bytes_known) {
  return summarize(totals.nll.slice(0, begin, end), totals.correct.slice(0, begin, end),
                   totals.count.slice(0, begin, end), totals.bytes.slice(0, begin, end), bytes_known);
}

// Scores every window of one (protocol, length) plan: the metrics of its result row.
nlohmann::json score_plan(const ModelFactory& make_model, const LengthPlan& plan, const ScoringContext& context) {
  const int64_t length = plan.length;
  const auto positions = evaluation_positions(context.sampling, length, context.runtime.device());
  const std::size_t per_batch = std::max<int64_t>(1, context.batch_tokens / length);
  PositionTotals totals(length);
  const auto start = std::chrono::steady_clock::now();
  int64_t begin = 0;
  for (int64_t end : context_ends(length, context.train_length, context.dynamic_step)) {
    GPT model = make_model(end);
    for (std::size_t b = 0; b < plan.windows.size(); b += per_batch) {
      const std::vector<EvalWindow> chunk(plan.windows.begin() + b,
                                          plan.windows.begin() + std::min(plan.windows.size(), b + per_batch));
      const bool scores_here = std::any_of(chunk.begin(), chunk.end(), [&](const EvalWindow& w) { return w.score_from < end; });
      if (scores_here && context.owns(int64_t(b / per_batch))) score_batch(model, chunk, begin, end, positions, context, totals);
    }
    begin = end;
  }
  context.sum_({totals.nll, totals.correct, totals.count, totals.bytes});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool known = !context.token_bytes.empty();
  nlohmann::json result = summarize_positions(totals, 0, length, known);
  if (result.at("tokens").get<int64_t>() != plan.tokens) {
    throw std::logic_error("eval: scored " + result.at("tokens").dump() + " targets, the plan says " +
                           std::to_string(plan.tokens));
  }
  result.update(plan.fields);
  result["status"] = "ok";
  result["windows"] = int64_t(plan.windows.size());
  result["seconds"] = seconds;
  result["tokens_per_s"] = double(plan.tokens) / seconds;
  result["peak_rss_mib"] = peak_rss_mib();
  if (length > context.train_length) result["beyond_train"] = summarize_positions(totals, context.train_length, length, known);
  for (const auto& part : plan.parts) result[part.name] = summarize_positions(totals, part.begin, part.end, known);
  nlohmann::json buckets = nlohmann::json::array();
  for (const auto& [begin, end] : position_buckets(length)) {
    nlohmann::json bucket = summarize_positions(totals, begin, end, known);
    bucket["begin"] = begin;
    bucket["end"] = end;
    buckets.push_back(bucket);
  }
  result["position_buckets"] = buckets;
  return result;
}

// The trained weights into a model built from a treated config (same tensors: treatments only swap
// parameter-free rotations and attention settings).
void copy_weights(GPT& from, GPT& to) {
  auto source = from->named_parameters(true);
  auto source_buffers = from->named_buffers(true);
  for (auto& p : to->named_parameters(true)) p.value().copy_(source[p.key()]);
  for (auto& b : to->named_buffers(true)) {
    if (const auto* found = source_buffers.find(b.key())) b.value().copy_(*found);
  }
}

// What a results file records about one treatment: its overlay, the layers it produced and how the
// documents of a window were told apart.
nlohmann::json treatment_json(const Treatment& treatment, const RunConfig& variant, int64_t dynamic_step,
                              const DocumentOptions& documents) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < variant.layers.size(); ++l) {
    layers.push_back({{"position", variant.layer_position(l).to_json()},
                      {"attention", attention_json(variant.layers[l].attention)}});
  }
  return {{"name", treatment.name},
          {"overlay", treatment.overlay},
          {"layers", layers},
          {"position_sampling", {{"eval", enum_name(kEvalPositionNames, variant.position_sampling.eval)},
                                 {"range", variant.position_sampling.range}}},
          {"dynamic_step", dynamic_step},
          {"documents", {{"reset_positions", documents.reset_positions}, {"mask_documents", documents.mask_documents},
                         {"end_of_text", documents.active() ? nlohmann::json(documents.end_of_text) : nlohmann::json()}}}};
}

// A model reads ids: evaluating it on ids from another tokenizer would score nonsense.
void check_same_tokenizer(const nlohmann::json& trained_dataset, const Dataset& dataset, const fs::path& dataset_dir) {
  if (!trained_dataset.contains("tokenizer")) return;  // runs from before tokenizers were recorded: bytes
  if (trained_dataset.at("tokenizer") != dataset.tokenizer_identity()) {
    throw UserError(dataset_dir.string() + ": tokenizer " + dataset.tokenizer_identity().dump() +
                    " differs from the one the run was trained with, " + trained_dataset.at("tokenizer").dump());
  }
}

nlohmann::json unsupported(const std::string& why) { return {{"status", "unsupported"}, {"error", why}}; }

// What can be evaluated at a length: a language-model protocol or a probe.
struct Evaluation {
  const char* name;
  std::function<nlohmann::json(const ModelFactory&, int64_t length, const ScoringContext&)> score;
};

std::vector<Evaluation> evaluations(const std::vector<Protocol>& protocols, const EvalOptions& options) {
  std::vector<Evaluation> list;
  for (const auto& protocol : protocols) {
    list.push_back({protocol.name(), [&protocol](const ModelFactory& make_model, int64_t length, const ScoringContext& context) {
                      const LengthPlan plan = plan_length(protocol, length);
                      return plan.unsupported.empty() ? score_plan(make_model, plan, context) : unsupported(plan.unsupported);
                    }});
  }
  for (ProbeKind kind : options.probes) {
    list.push_back({probe_name(kind), [kind, &options](const ModelFactory& make_model, int64_t length,
                                                        const ScoringContext& context) {
                      return score_probe(make_model, kind, options.probe_params, length, context);
                    }});
  }
  return list;
}

// The result row of one protocol or probe at one length.
nlohmann::json evaluate_length(const ModelFactory& make_model, const std::string& scheme, const Evaluation& evaluation,
                               int64_t length, const ScoringContext& context) {
  nlohmann::json row;
  if (context.max_length > 0 && length > context.max_length) {
    row = unsupported(scheme + " positions cover only " + std::to_string(context.max_length) +
                      " positions; cannot evaluate length " + std::to_string(length));
  } else {
    row = evaluation.score(make_model, length, context);
  }
  return row;
}

// The split as the protocols see it: its stream size and documents.
SplitInfo split_info(const Dataset& dataset, const std::string& name) {
  SplitInfo split;
  split.name = name;
  split.tokens = int64_t(dataset.split(name).size());
  for (const auto& document : dataset.documents()) {
    if (document.split != name) continue;
    split.documents.push_back({document.offset, document.offset + document.tokens});
    split.document_names.push_back(document.name);
  }
  return split;
}

// The baseline (unless --no-baseline) and the --treatments files' entries, filtered by --only.
std::vector<Treatment> selected_treatments(const EvalOptions& options) {
  std::vector<Treatment> treatments;
  if (options.include_baseline) treatments.push_back(baseline_treatment());
  for (auto& t : load_treatments(options.treatment_files)) treatments.push_back(std::move(t));
  if (!options.only.empty()) treatments = select_treatments(treatments, options.only);
  if (treatments.empty()) throw UserError("eval: nothing to evaluate (--no-baseline without --treatments)");
  return treatments;
}

// Whether the evaluation runs the task protocol: on a task dataset (its default), and only there.
bool uses_task_protocol(const EvalOptions& options, const Dataset& dataset, const fs::path& dir) {
  if (dataset.has_task() && (!options.protocols.empty() || !options.probes.empty())) {
    const std::string name =
        options.protocols.empty() ? probe_name(options.probes.front()) : protocol_name(options.protocols.front());
    throw UserError(dir.string() + ": a synthetic-task dataset (" + dataset.task().at("name").get<std::string>() +
                    "); --protocol " + name + " scores text, evaluate it with --protocol task");
  }
  if (!dataset.has_task() && options.task_protocol) {
    throw UserError("--protocol task needs a synthetic-task dataset (extrap data --task); " + dir.string() +
                    " is a text corpus");
  }
  if (dataset.has_task()) {
    const auto& p = options.protocol_params;
    if (p.stride != 0 || p.suffix_targets != 0 || p.suffix_source) {
      throw UserError("--stride, --suffix-targets and --suffix-source do not apply to --protocol task");
    }
  }
  return dataset.has_task();
}

}  // namespace

nlohmann::json evaluate(const EvalOptions& options) {
  const fs::path config_file = options.run_dir / "config.json";
  if (!fs::exists(config_file)) throw UserError(options.run_dir.string() + ": not a run directory (no config.json)");
  const RunConfig config = config_from_json(read_json_file(config_file), config_file.string());
  const auto checkpoint = latest_checkpoint(options.run_dir);
  if (!checkpoint) throw UserError(options.run_dir.string() + ": no checkpoint to evaluate (train it first)");
  for (int64_t length : options.lengths) {
    if (length <= 0) throw UserError("eval: --lengths: " + std::to_string(length) + " is not a positive length");
  }
  if (options.max_tokens <= 0) throw UserError("eval: --max-tokens must be positive");

  const fs::path dataset_dir = options.dataset.empty() ? fs::path(config.data.dataset) : options.dataset;
  const Dataset dataset = Dataset::load(dataset_dir);
  const auto& stream = dataset.split(options.split);
  const bool task = uses_task_protocol(options, dataset, dataset_dir);
  const std::vector<int64_t> lengths = options.lengths.empty() && !task ? kDefaultLengths : options.lengths;
  std::vector<Protocol> protocols;
  std::optional<TaskExamples> task_examples;
  std::optional<TaskPlan> task_plan;
  if (task) {
    task_examples.emplace(dataset, options.split);
    task_plan = make_task_plan(dataset, *task_examples, options.split, lengths);
  } else {
    const bool defaults = options.protocols.empty() && options.probes.empty();
    const auto kinds = defaults ? std::vector<ProtocolKind>{ProtocolKind::kNonoverlap} : options.protocols;
    protocols = make_protocols(kinds, options.protocol_params, lengths, options.max_tokens, config.data.train_length,
                               split_info(dataset, options.split));
    // Under a subword tokenizer the prompts are re-encoded, and their lengths checked once encoded.
    const bool bytes = dataset.tokenizer().type() == "byte";
    check_probe_params(options.probes, options.probe_params, bytes ? lengths : std::vector<int64_t>{});
  }
  const Runtime runtime(options.device, options.precision.value_or(config.train.precision));
  const ProcessGroup group = join_launcher_group(options.device, options.collective_timeout_s);

  const std::vector<Treatment> treatments = selected_treatments(options);
  std::vector<RunConfig> treated;
  for (const auto& t : treatments) treated.push_back(apply_treatment(config, t));  // all checked before any work
  const fs::path out = options.out.empty() ? options.run_dir / "results" / "eval.json" : options.out;
  if (group.is_root()) check_writable_file(out, "results file");
  // Rows land here as they finish, so an interrupted evaluation keeps them without touching an
  // earlier complete `out`; the finished document replaces both.
  const fs::path partial = out.parent_path() / (out.stem().string() + ".partial" + out.extension().string());

  torch::NoGradGuard no_grad;
  GPT trained = build_model(config);
  const TrainingState state = load_checkpoint(*checkpoint, trained, nullptr);

  std::string trained_on;
  if (fs::exists(options.run_dir / "run.json")) {
    const auto trained_dataset = read_json_file(options.run_dir / "run.json").at("dataset");
    trained_on = trained_dataset.value("checksum", "");
    check_same_tokenizer(trained_dataset, dataset, dataset_dir);
  }
  nlohmann::json protocol_list = nlohmann::json::array();
  for (const auto& protocol : protocols) protocol_list.push_back(protocol.to_json());
  for (ProbeKind kind : options.probes) protocol_list.push_back(probe_json(kind, options.probe_params));
  if (task_plan) protocol_list.push_back(task_plan->to_json());
  const std::vector<Evaluation> to_evaluate = evaluations(protocols, options);
  std::vector<int64_t> dynamic_steps;
  std::vector<DocumentOptions> documents;
  nlohmann::json treatment_list = nlohmann::json::array();
  for (std::size_t t = 0; t < treatments.size(); ++t) {
    dynamic_steps.push_back(dynamic_step(treatments[t], treated[t]));
    documents.push_back(document_options(treated[t].data, dataset.metadata(), dataset_dir.string()));
    treatment_list.push_back(treatment_json(treatments[t], treated[t], dynamic_steps[t], documents[t]));
  }
  nlohmann::json document = {
      {"schema", kResultsSchema},
      {"tool", {{"name", "extrap"}, {"version", kVersion}, {"git_commit", kGitCommit}}},
      {"created", utc_timestamp()},
      {"run", {{"dir", options.run_dir.string()}, {"name", config.name}, {"checkpoint_step", state.step},
               {"finished", run_is_done(options.run_dir)}, {"config", config.resolved}}},
      {"data", {{"dataset", dataset_dir.string()}, {"checksum", dataset.checksum()}, {"split", options.split},
                {"split_tokens", int64_t(stream.size())}, {"trained_on_same_dataset", trained_on == dataset.checksum()},
                {"format", dataset.metadata().at("format")}, {"corpus", dataset.metadata().value("corpus", "")},
                {"tokenizer", dataset.tokenizer_identity()}, {"text", dataset.text_identity()}}},
      {"protocols", protocol_list},
      {"treatments", treatment_list},
      {"device", options.device},
      {"precision", enum_name(kPrecisionNames, runtime.precision())},
      {"threads", torch::get_num_threads()},
      {"world_size", group.size()},
      {"complete", false},
      {"results", nlohmann::json::array()}};
  if (task_plan) {
    const auto& task_metadata = dataset.task();
    document["data"]["task"] = {{"name", task_plan->task},
                                {"params", task_metadata.at("params")},
                                {"train_lengths", {task_plan->trained.low, task_plan->trained.high}},
                                {"test_lengths", task_metadata.at("test_lengths")}};
  }
  // Natural haystacks under a subword tokenizer read the split as text.
  const bool decode = !options.probes.empty() && options.probe_params.haystack == Haystack::kNatural &&
                      dataset.tokenizer().type() != "byte" && dataset.tokenizer().encodes_text();
  const TokenStream probe_text = decode ? decoded_bytes(stream, dataset.tokenizer()) : TokenStream();
  if (dataset.tokenizer().type() != "byte") {
    require_encoded_probe_lengths(options.probes, options.probe_params, lengths, probe_text, dataset.tokenizer());
  }
  for (std::size_t t = 0; t < treatments.size(); ++t) {
    const RunConfig& variant = treated[t];
    const ScoringContext context{stream,  dataset.tokenizer().token_bytes(), variant.position_sampling,
                                 config.data.train_length, options.batch_tokens, runtime, dynamic_steps[t],
                                 variant.max_length(), &dataset.tokenizer(), &probe_text, documents[t], &group};
    // Built per window length: inference-time treatments derive their extension factor from it.
    const ModelFactory make_model = [&](int64_t context_length) {
      GPT model = build_model(variant, context_length);
      copy_weights(trained, model);
      runtime.place(model);
      model->eval();
      model->set_attention_block(kEvalAttentionBlock);
      return model;
    };
    const auto record = [&](nlohmann::json row, const std::string& protocol, int64_t length) {
      row["protocol"] = protocol;
      row["length"] = length;
      row["treatment"] = treatments[t].name;
      spdlog::info("{} | {} | {} | length {:>6} | {}", config.name, treatments[t].name, protocol, length,
                   describe_result(row));
      document["results"].push_back(row);
      if (group.is_root()) write_json_atomic(partial, document);
    };
    if (task_plan) {
      const TaskScoring scoring{*task_examples, context, variant.position.scheme};
      for (const auto& bin : task_plan->bins) record(score_task_bin(make_model, bin, scoring), "task", bin.high);
    }
    for (const auto& evaluation : to_evaluate) {
      for (int64_t length : lengths) {
        record(evaluate_length(make_model, variant.position.scheme, evaluation, length, context), evaluation.name, length);
      }
    }
  }
  document["complete"] = true;
  if (!group.is_root()) return nlohmann::json::object();
  write_json_atomic(out, document);
  fs::remove(partial);
  spdlog::info("results written to {}", out.string());
  return document;
}

}  // namespace extrap
