#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "bench/bench.h"
#include "cli/plot.h"
#include "cli/sweep_command.h"
#include "cli/sweep_report.h"
#include "common/error.h"
#include "common/files.h"
#include "common/process.h"
#include "common/version.h"
#include "data/dataset.h"
#include "data/task_dataset.h"
#include "eval/evaluator.h"
#include "position/rope_bound.h"
#include "position/scheme_info.h"
#include "report/results.h"
#include "report/tables.h"
#include "train/trainer.h"

namespace extrap {
namespace {

// "a,,b," -> {"a", "", "b", ""}: every comma separates, so empty parts can be reported.
// Throws "<option> <why>" for the first of `options` that was given.
void require_unused(const std::vector<CLI::Option*>& options, const std::string& why) {
  for (const auto* option : options) {
    if (option->count()) throw UserError(option->get_name() + " " + why);
  }
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text + ",");  // the sentinel makes a trailing comma an empty part
  std::string part;
  while (std::getline(stream, part, ',')) parts.push_back(part);
  return parts;
}

std::vector<int64_t> parse_lengths(const std::string& text) {
  std::vector<int64_t> lengths;
  for (const auto& part : split_commas(text)) {
    long long value = 0;
    try {
      std::size_t used = 0;
      value = std::stoll(part, &used);
      if (used != part.size() || value <= 0) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw UserError("--lengths: \"" + part + "\" is not a positive integer (expected e.g. 512,2048,8192)");
    }
    if (std::find(lengths.begin(), lengths.end(), value) != lengths.end()) {
      throw UserError("--lengths: " + part + " is given twice");
    }
    lengths.push_back(value);
  }
  return lengths;
}

// "a,b" -> {"a", "b"}; "" -> {}. An empty name is an error naming `option`.
std::vector<std::string> split_names(const std::string& text, const std::string& option) {
  if (text.empty()) return {};
  const auto names = split_commas(text);
  for (const auto& name : names) {
    if (name.empty()) throw UserError(option + ": empty name in \"" + text + "\"");
  }
  return names;
}

// --protocol: the language-model protocols and the probes, each in the order given.
void parse_protocols(const std::string& text, EvalOptions& options) {
  std::string protocols;
  for (const auto& name : split_commas(text)) {
    ProbeKind kind;
    if (!find_probe(name, kind)) {
      protocols += (protocols.empty() ? "" : ",") + name;
    } else if (std::find(options.probes.begin(), options.probes.end(), kind) != options.probes.end()) {
      throw UserError("--protocol: " + name + " is given twice");
    } else {
      options.probes.push_back(kind);
    }
  }
  options.protocols.clear();
  if (!protocols.empty() || options.probes.empty()) options.protocols = parse_protocol_names(protocols);
}

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> depths;
  for (const auto& part : split_commas(text)) {
    try {
      std::size_t used = 0;
      depths.push_back(std::stod(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw UserError("--depths: \"" + part + "\" is not a number (expected e.g. 0,0.25,0.5,0.75,1)");
    }
  }
  return depths;
}

enum class SchemeListing { Full, Brief, Markdown, Json };

void print_schemes(SchemeListing format) {
  nlohmann::json listing = nlohmann::json::array();
  for (const auto& info : registered_schemes()) {
    nlohmann::json params = nlohmann::json::array();
    for (const auto& p : info.params) {
      params.push_back({{"name", p.name}, {"default", p.default_value}, {"description", p.description},
                        {"inference", p.inference}});
    }
    listing.push_back({{"name", info.name}, {"description", info.description}, {"reference", info.reference},
                       {"family", info.family}, {"params", params}});
  }
  if (format == SchemeListing::Json) {
    std::cout << listing.dump(2) << "\n";
    return;
  }
  if (format == SchemeListing::Markdown) std::cout << "| scheme | what it does | reference |\n| --- | --- | --- |\n";
  for (const auto& scheme : listing) {
    const auto name = scheme["name"].get<std::string>(), description = scheme["description"].get<std::string>(),
               reference = scheme["reference"].get<std::string>();
    if (format == SchemeListing::Markdown) {
      const auto cell = [](std::string text) {  // a '|' would end the cell
        for (std::size_t at = text.find('|'); at != std::string::npos; at = text.find('|', at + 2)) text.insert(at, "\\");
        return text;
      };
      std::cout << "| `" << name << "` | " << cell(description) << " | " << cell(reference) << " |\n";
      continue;
    }
    std::cout << name << ": " << description << "\n    reference: " << reference << "\n";
    if (format == SchemeListing::Brief) continue;
    for (const auto& p : scheme["params"]) {
      std::cout << "    " << p["name"].get<std::string>() << " (default " << p["default"].dump()
                << (p["inference"].get<bool>() ? ", inference-time" : "") << "): " << p["description"].get<std::string>()
                << "\n";
    }
  }
}

void print_bench(const nlohmann::json& r) {
  std::string overrides;
  for (const auto& o : r["model"]["overrides"]) overrides += " " + o.get<std::string>();
  const auto& m = r["model"];
  std::cout << "reference model: d_model " << m["d_model"] << ", " << m["n_layers"] << " layers, " << m["n_heads"]
            << " heads, length " << m["train_length"] << ", batch " << m["batch"] << ", scheme "
            << m["scheme"].get<std::string>() << (overrides.empty() ? "" : " (--set" + overrides + ")") << ", "
            << m["parameters"] << " parameters, " << r["precision"].get<std::string>() << ", " << r["threads"]
            << " threads\n";
  if (r.contains("train")) {
    const auto& t = r["train"];
    std::cout << "train: " << t["step_ms"].get<double>() << " ms/step, " << t["tokens_per_s"].get<double>()
              << " tokens/s, " << t["gflops"].get<double>() << " GFLOP/s (" << 100.0 * t["fraction_of_peak"].get<double>()
              << "% of the measured matmul peak " << t["matmul_peak_gflops"].get<double>() << " GFLOP/s), peak RSS "
              << t["peak_rss_mib"].get<double>() << " MiB\n";
  }
  if (r.contains("data_parallel") && r["data_parallel"].contains("scaling_efficiency")) {
    const auto& d = r["data_parallel"];
    std::cout << "data parallel: " << d["world_size"] << " processes (" << d["backend"].get<std::string>() << "), "
              << d["tokens_per_s_per_process"].get<double>() << " tokens/s per process, "
              << d["tokens_per_s_total"].get<double>() << " in all; rank 0 alone " << d["tokens_per_s_alone"].get<double>()
              << " tokens/s: scaling efficiency " << 100.0 * d["scaling_efficiency"].get<double>() << "%\n";
  }
  if (r.contains("eval")) {
    std::cout << "eval @" << r["eval"]["length"] << ": " << r["eval"]["tokens_per_s"].get<double>()
              << " tokens/s, peak RSS " << r["eval"]["peak_rss_mib"].get<double>() << " MiB\n";
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"extrap: train short, test long. Length-extrapolation experiments for small GPTs."};
  app.set_version_flag("--version", std::string(kVersion) + " (" + kGitCommit + ")");
  app.require_subcommand(1);
  int threads = 0;
  std::string device = "cpu";
  std::string precision;  // empty: fp32 for bench, the run's train.precision for eval, the config's for train
  double collective_timeout = 300;
  auto add_runtime = [&](CLI::App* cmd) {
    cmd->add_option("--collective-timeout", collective_timeout,
                    "under torchrun or srun: seconds a collective or the rendezvous waits for the other processes "
                    "(default 300)")->check(CLI::PositiveNumber);
    cmd->add_option("--threads", threads, "intra-op threads (default: all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    cmd->add_option("--precision", precision, "fp32 or bf16 (autocast matrix products, fp32 weights)");
  };

  PrepareOptions prepare;
  auto* data_cmd = app.add_subcommand(
      "data", "prepare a corpus (tokens split into train/val/test by document), describe token shards made "
              "elsewhere, or generate a synthetic task");
  auto* corpus_option = data_cmd->add_option(
      "--corpus", prepare.corpus,
      "brown, kjv, text, jsonl or code; llmc or nanogpt: token shards read in place (docs/data.md)");
  auto* input_option = data_cmd->add_option("--input", prepare.input, "raw corpus (see scripts/fetch_corpus.sh)");
  auto* text_field_option =
      data_cmd->add_option("--text-field", prepare.text_field, "jsonl: the string field that holds each document (default text)");
  auto* extensions_option = data_cmd->add_option("--extensions", prepare.extensions,
                                                 "code: extensions of the files read, comma-separated (default .c,.h)")
                                ->delimiter(',');
  data_cmd->add_option("--out", prepare.output, "prepared dataset directory")->required();
  data_cmd->add_option("--seed", prepare.seed, "split seed (corpora) or generator seed (tasks)");
  auto* val_fraction_option = data_cmd->add_option("--val-fraction", prepare.val_fraction, "fraction of documents for validation");
  auto* test_fraction_option = data_cmd->add_option("--test-fraction", prepare.test_fraction, "fraction of documents for test");
  int64_t vocab_size = 0;
  ShardOptions shards;
  const std::vector<CLI::Option*> tokenizer_options = {
      data_cmd->add_option("--tokenizer", prepare.tokenizer, "byte (default) or sentencepiece, trained on the train split"),
      data_cmd->add_option("--model-type", prepare.sentencepiece.model_type, "sentencepiece: bpe (default) or unigram"),
      data_cmd->add_flag("--byte-fallback", prepare.sentencepiece.byte_fallback,
                         "sentencepiece: unseen characters become byte tokens instead of <unk>"),
      data_cmd->add_option("--tokenizer-model", prepare.tokenizer_model, "sentencepiece: use this .model instead of training"),
      data_cmd->add_option("--max-sentences", prepare.sentencepiece.max_sentences,
                           "sentencepiece: training lines sampled (default 2000000)")};
  auto* vocab_option = data_cmd->add_option("--vocab-size", vocab_size,
                                            "sentencepiece: vocabulary to train (default 4096); shards: ids (llmc default 50257)");
  const std::vector<CLI::Option*> shard_options = {
      data_cmd->add_option("--end-of-text", shards.end_of_text, "shards: the document separator id (llmc default 50256)"),
      data_cmd->add_option("--vocabulary", shards.vocabulary,
                           "shards: byte-level BPE vocabulary (GPT-2 encoder.json or tokenizer.json), for bits per byte")};
  TaskDatasetOptions task_data;
  std::string train_lengths = "1:40", test_lengths = "1:160";
  std::vector<std::string> task_params;
  int64_t show_examples = 0;
  auto* task_option = data_cmd->add_option("--task", task_data.task,
                                           "generate a synthetic task instead: addition, copy, copy_sep, counting, mqar, "
                                           "passkey or reverse (docs/data.md)");
  const std::vector<CLI::Option*> task_options = {
      data_cmd->add_option("--train-lengths", train_lengths, "task: example lengths A:B in tokens of train and val (default 1:40)"),
      data_cmd->add_option("--test-lengths", test_lengths, "task: example lengths C:D in tokens of test (default 1:160)"),
      data_cmd->add_option("--train-examples", task_data.train_examples, "task: train examples (default 20000)"),
      data_cmd->add_option("--val-examples", task_data.val_examples, "task: val examples (default 500)"),
      data_cmd->add_option("--test-examples", task_data.test_examples, "task: test examples (default 2000)"),
      data_cmd->add_option("--param", task_params, "task: a task parameter KEY=VALUE, e.g. --param vocab=10")->take_all(),
      data_cmd->add_option("--show", show_examples, "task: print the first N examples of each split")};

  TrainOptions train_options;
  auto* train_cmd = app.add_subcommand("train", "train a model from a JSON config");
  train_cmd->add_option("--config", train_options.config_path, "config file");
  train_cmd->add_option("--set", train_options.overrides, "override a config key: --set model.d_model=256")->take_all();
  train_cmd->add_option("--out", train_options.out, "run directory (default runs/<name>)");
  train_cmd->add_flag("--resume", train_options.resume, "continue the run in --out (or runs/<name>) from its latest checkpoint");
  add_runtime(train_cmd);

  EvalOptions eval_options;
  std::string lengths = "512,2048,8192";
  auto* eval_cmd = app.add_subcommand("eval", "evaluate a trained run at several lengths");
  eval_cmd->add_option("--run", eval_options.run_dir, "run directory")->required();
  auto* lengths_option = eval_cmd->add_option(
      "--lengths", lengths, "comma-separated window lengths (default 512,2048,8192; --protocol task: bin upper ends)");
  eval_cmd->add_option("--split", eval_options.split, "train, val or test");
  eval_cmd->add_option("--max-tokens", eval_options.max_tokens, "tokens scored at every length");
  eval_cmd->add_option("--out", eval_options.out, "results file (default RUN/results/eval.json)");
  eval_cmd->add_option("--data", eval_options.dataset, "dataset directory (default: the run's)");
  eval_cmd->add_option("--batch-tokens", eval_options.batch_tokens, "tokens per forward pass")->check(CLI::PositiveNumber);
  std::string protocols;
  auto* protocol_option = eval_cmd->add_option(
      "--protocol", protocols,
      "nonoverlap (default), sliding, suffix or repeated, or a probe: passkey, niah, niah_multikey, niah_multivalue, "
      "niah_multiquery or mqar; several separated by commas; task (the default on a synthetic-task dataset, alone): "
      "exact match per length bin");
  auto* stride_option = eval_cmd->add_option("--stride", eval_options.protocol_params.stride,
                                             "sliding: window stride in [1, length] (default length/2)");
  auto* suffix_targets_option = eval_cmd->add_option("--suffix-targets", eval_options.protocol_params.suffix_targets,
                                                     "suffix: targets scored per sample (default: training length)");
  std::string suffix_source;
  auto* suffix_source_option =
      eval_cmd->add_option("--suffix-source", suffix_source, "suffix: documents (default) or stream");
  std::string depths, haystack;
  ProbeParams& probe = eval_options.probe_params;
  const std::vector<CLI::Option*> probe_options = {
      eval_cmd->add_option("--depths", depths, "probes: needle depths in [0, 1] (default 0,0.1,...,1)"),
      eval_cmd->add_option("--trials", probe.trials, "probes: prompts per (length, depth) (default 10)"),
      eval_cmd->add_option("--probe-seed", probe.seed, "probes: seed of keys, values and natural haystacks"),
      eval_cmd->add_option("--haystack", haystack, "probes: fixed (default; Landmark's filler) or natural (the split's text)"),
      eval_cmd->add_option("--key-digits", probe.key_digits, "passkey: digits of the key (default 0: keys 1..50000)"),
      eval_cmd->add_option("--needles", probe.needles,
                           "needles (multikey), values (multivalue) or queries (multiquery, mqar) (default 4)"),
      eval_cmd->add_flag("--greedy", probe.greedy,
                         "probes: also decode greedily and look for the answers in the continuation (costly)")};
  eval_cmd->add_option("--treatments", eval_options.treatment_files,
                       "JSON files of inference-time treatments (e.g. configs/eval/su_table.json); each is "
                       "evaluated besides the untreated baseline")
      ->take_all();
  bool no_baseline = false;
  eval_cmd->add_flag("--no-baseline", no_baseline, "with --treatments: skip the untreated model");
  std::string only;
  eval_cmd->add_option("--only", only,
                       "comma-separated treatment names to evaluate, in this order (e.g. baseline,PI,ReRoPE-w/4); "
                       "default: all");
  add_runtime(eval_cmd);

  std::vector<std::string> report_inputs;
  std::string format = "table", layout = "runs";
  ReportOptions report_options;
  bool su_layout = false;
  auto* report_cmd = app.add_subcommand("report", "compare runs: a (run, treatment) x (length, protocol) table");
  std::string report_sweep;
  report_cmd->add_option("inputs", report_inputs, "run directories or results files");
  report_cmd->add_option("--sweep", report_sweep, "every run of this sweep file, and the runs without results");
  report_cmd->add_option("--format", format, "table, markdown or csv");
  report_cmd->add_option("--layout", layout,
                         "runs (default): columns per length x protocol; su: Su's tables, natural and repeated "
                         "columns per length; probe: a depth x length grid per probe");
  report_cmd->add_flag("--su", su_layout, "the same as --layout su");
  report_cmd->add_option("--metric", report_options.metric,
                         "ppl (default for runs), bpb, nll, acc (default for su) or beyond_ppl; probe layout: em "
                         "(default), acc, logprob or greedy");
  report_cmd->add_option("--part", report_options.part,
                         "window (runs default), natural or copy (repeated windows; su default for its repeated "
                         "column: copy), beyond (past train length)");

  PlotOptions plot_options;
  auto* plot_cmd = app.add_subcommand("plot", "figures (PNG and SVG) from results files and run directories, "
                                              "drawn by scripts/plot.py with matplotlib");
  plot_cmd->add_option("inputs", plot_options.inputs, "results files, run directories or metrics.jsonl files")
      ->required();
  plot_cmd->add_option("--out", plot_options.out, "directory for the figures")->required();
  plot_cmd->add_option("--metric", plot_options.metric,
                       "bpb (default), ppl, nll or acc (the default for Su's treatments figure)");

  bool schemes_json = false, schemes_brief = false, schemes_markdown = false;
  auto* schemes_cmd = app.add_subcommand("schemes", "list the registered position schemes and their parameters");
  schemes_cmd->add_flag("--json", schemes_json, "print JSON");
  schemes_cmd->add_flag("--brief", schemes_brief, "names, descriptions and references only");
  schemes_cmd->add_flag("--markdown", schemes_markdown, "a markdown table of names, descriptions and references");
  int64_t rope_bound_length = 0, rope_bound_head_dim = 0;
  auto* rope_bound_option = schemes_cmd->add_option(
      "--rope-bound", rope_bound_length,
      "print Su's lower bound on RoPE's base for this context length (Part 18; with --head-dim)");
  schemes_cmd->add_option("--head-dim", rope_bound_head_dim, "head dimension for --rope-bound")->needs(rope_bound_option);
  rope_bound_option->needs(schemes_cmd->get_option("--head-dim"));

  const SweepCommand sweep_command = add_sweep_command(app);

  BenchOptions bench_options;
  std::string bench_json;
  auto* bench_cmd = app.add_subcommand("bench", "training and eval speed of the reference model");
  bench_cmd->add_option("--steps", bench_options.steps, "timed training steps (0: no training)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--warmup", bench_options.warmup, "untimed warm-up steps");
  bench_cmd->add_option("--eval-length", bench_options.eval_length, "eval window length (0: no eval forward)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--batch", bench_options.batch, "training batch size")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--attention-kernel", bench_options.attention_kernel,
                        "fused, tiled, blockwise or sdpa (default: the runtime's choice for the device and precision)");
  bench_cmd->add_option("--attention-block", bench_options.attention_block, "query rows per attention block")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--document-length", bench_options.document_length,
                        "train on windows of documents this long, told apart as --set data.reset_positions / "
                        "data.mask_documents say (bench/documents.sh)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--json", bench_json, "also write the figures to this JSON file");
  bench_cmd->add_option("--set", bench_options.overrides,
                        "override the reference config: --set position.scheme=alibi attention.window=64")
      ->take_all();
  add_runtime(bench_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  spdlog::set_pattern("[%H:%M:%S] %^%v%$");
  try {
    if (*plot_cmd) return run_plot(plot_options);  // no LibTorch threads to set up for a Python child
    if (*sweep_command.command) return sweep_command.run();  // its children set up their own
    configure_threads(threads);
    if (*data_cmd && task_option->count()) {
      for (const auto* option : {corpus_option, input_option, val_fraction_option, test_fraction_option, text_field_option,
                                 extensions_option, vocab_option}) {
        if (option->count()) throw UserError(option->get_name() + " does not apply to --task datasets");
      }
      require_unused(tokenizer_options, "does not apply to --task datasets (their tokens are bytes)");
      require_unused(shard_options, "does not apply to --task datasets");
      task_data.train_lengths = parse_length_range(train_lengths, "--train-lengths");
      task_data.test_lengths = parse_length_range(test_lengths, "--test-lengths");
      for (const auto& assignment : task_params) {
        const auto equals = assignment.find('=');
        if (equals == std::string::npos || equals == 0) throw UserError("--param " + assignment + ": expected KEY=VALUE");
        task_data.params[assignment.substr(0, equals)] = assignment.substr(equals + 1);
      }
      task_data.seed = prepare.seed;
      task_data.output = prepare.output;
      const auto metadata = prepare_task_dataset(task_data);
      for (const char* split : {"train", "val", "test"}) {
        const auto& lengths = metadata["task"]["example_lengths"][split];
        spdlog::info("{}: {} examples of {} to {} tokens", split, metadata["splits"][split]["documents"].get<int64_t>(),
                     lengths[0].get<int64_t>(), lengths[1].get<int64_t>());
      }
      spdlog::info("prepared {} task {} (checksum {})", prepare.output.string(), task_data.task,
                   metadata["checksum"].get<std::string>());
      if (show_examples > 0) std::cout << show_task_examples(Dataset::load(prepare.output), show_examples);
    } else if (*data_cmd) {
      for (const auto* option : task_options) {
        if (option->count()) throw UserError(option->get_name() + " applies only with --task");
      }
      if (!corpus_option->count() || !input_option->count()) {
        throw UserError("data: give --corpus and --input (a corpus), or --task (a synthetic task)");
      }
      if (text_field_option->count() && prepare.corpus != "jsonl") throw UserError("--text-field applies only to --corpus jsonl");
      if (extensions_option->count() && prepare.corpus != "code") throw UserError("--extensions applies only to --corpus code");
      const bool shard_corpus = prepare.corpus == "llmc" || prepare.corpus == "nanogpt";
      if (shard_corpus) {
        require_unused(tokenizer_options, "does not apply to token shards (their ids are already made)");
        for (const auto* option : {val_fraction_option, test_fraction_option}) {
          if (option->count()) throw UserError(option->get_name() + " does not apply to token shards (val shards are held out)");
        }
        shards.layout = prepare.corpus;
        shards.input = prepare.input;
        shards.vocab_size = vocab_size;
      } else {
        require_unused(shard_options, "applies only to --corpus llmc or nanogpt");
        if (vocab_option->count()) prepare.sentencepiece.vocab_size = vocab_size;
        if ((vocab_option->count() || tokenizer_options[1]->count() || tokenizer_options[2]->count() ||
             tokenizer_options[4]->count()) && prepare.tokenizer != "sentencepiece") {
          throw UserError("--vocab-size, --model-type, --byte-fallback and --max-sentences need --tokenizer sentencepiece");
        }
      }
      const auto metadata = shard_corpus ? prepare_shard_dataset(shards, prepare.output) : prepare_dataset(prepare);
      for (const char* split : {"train", "val", "test"}) {
        const auto& entry = metadata["splits"][split];
        spdlog::info("{}: {} documents, {} tokens", split,
                     entry.value("documents", entry.value("end_of_text_tokens", int64_t(0))), entry["tokens"].get<int64_t>());
      }
      spdlog::info("prepared {} (checksum {})", prepare.output.string(), metadata["checksum"].get<std::string>());
    } else if (*train_cmd) {
      train_options.device = device;
      train_options.collective_timeout_s = collective_timeout;
      if (!precision.empty()) train_options.overrides.push_back("train.precision=" + std::string(enum_name(kPrecisionNames, parse_enum(kPrecisionNames, precision, "--precision"))));
      train(train_options);
    } else if (*eval_cmd) {
      if (lengths_option->count()) eval_options.lengths = parse_lengths(lengths);
      const auto protocol_names = split_commas(protocols);
      if (protocols == "task") {
        eval_options.task_protocol = true;
      } else if (std::find(protocol_names.begin(), protocol_names.end(), "task") != protocol_names.end()) {
        throw UserError("--protocol " + protocols + ": task is evaluated alone (it scores a task dataset's examples, "
                        "the others score text)");
      } else if (protocol_option->count()) {
        parse_protocols(protocols, eval_options);
      }
      for (const auto* option : probe_options) {
        if (option->count() && eval_options.probes.empty()) {
          throw UserError(option->get_name() + " applies only to the probes (" + kProbeNames + ")");
        }
      }
      if (!depths.empty()) probe.depths = parse_depths(depths);
      if (!haystack.empty()) {
        if (haystack != "fixed" && haystack != "natural") throw UserError("--haystack " + haystack + ": expected fixed or natural");
        probe.haystack = haystack == "fixed" ? Haystack::kFixed : Haystack::kNatural;
      }
      if (suffix_source_option->count()) eval_options.protocol_params.suffix_source = parse_suffix_source(suffix_source);
      eval_options.include_baseline = !no_baseline;
      eval_options.only = split_names(only, "--only");
      if (stride_option->count() && eval_options.protocol_params.stride < 1) {
        throw UserError("--stride " + std::to_string(eval_options.protocol_params.stride) +
                        " is not in [1, length]");
      }
      if (suffix_targets_option->count() && eval_options.protocol_params.suffix_targets < 1) {
        throw UserError("--suffix-targets " + std::to_string(eval_options.protocol_params.suffix_targets) +
                        " is not a positive count");
      }
      eval_options.device = device;
      eval_options.collective_timeout_s = collective_timeout;
      if (!precision.empty()) eval_options.precision = parse_enum(kPrecisionNames, precision, "--precision");
      const auto document = evaluate(eval_options);
      if (document.empty()) return 0;  // not rank 0 of a data-parallel evaluation: rank 0 reports
      std::cout << "\n" << render_report({document}, ReportOptions{});
      if (!eval_options.probes.empty()) {
        std::cout << "\n" << render_report({document}, {"", TableFormat::Terminal, "", ReportLayout::Probe});
      }
      if (std::find(eval_options.protocols.begin(), eval_options.protocols.end(), ProtocolKind::kRepeated) !=
          eval_options.protocols.end()) {
        for (const char* part : {"natural", "copy"}) {
          std::cout << "\n" << render_report({document}, "acc", TableFormat::Terminal, part);
        }
      }
    } else if (*report_cmd) {
      report_options.format = parse_table_format(format);
      report_options.layout = su_layout ? ReportLayout::Su : parse_report_layout(layout);
      print_report(read_report_inputs(report_inputs, report_sweep), report_options);
    } else if (*schemes_cmd && rope_bound_option->count()) {
      const double base = rope_base_lower_bound(rope_bound_length, rope_bound_head_dim);
      std::cout << "smallest RoPE base b with sum_t cos(m b^(-2t/" << rope_bound_head_dim << ")) >= 0 for every m < "
                << rope_bound_length << ": " << std::setprecision(4) << base
                << " (Su, Transformer upgrade road Part 18; scanned upwards in steps of 0.02%)\n";
    } else if (*schemes_cmd) {
      print_schemes(schemes_json       ? SchemeListing::Json
                    : schemes_markdown ? SchemeListing::Markdown
                    : schemes_brief    ? SchemeListing::Brief
                                       : SchemeListing::Full);
    } else if (*bench_cmd) {
      bench_options.device = device;
      bench_options.collective_timeout_s = collective_timeout;
      if (!precision.empty()) bench_options.precision = parse_enum(kPrecisionNames, precision, "--precision");
      const auto result = run_bench(bench_options);
      if (result.empty()) return 0;  // not rank 0 of a data-parallel bench: rank 0 reports
      print_bench(result);
      if (!bench_json.empty()) write_json_atomic(bench_json, result);
    }
  } catch (const UserError& e) {
    std::cerr << "extrap: error: " << e.what() << "\n";
    return 2;
  } catch (const Interrupted& e) {
    return 128 + e.signal;
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "extrap: internal error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace extrap
