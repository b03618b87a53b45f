#include "bench/bench.h"

#include <chrono>

#include "common/process.h"
#include "runtime/runtime.h"
#include "config/config.h"
#include "model/gpt.h"
#include "parallel/process_group.h"
#include "position/sampling.h"
#include "train/adamw.h"
#include "train/step.h"

namespace extrap {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The model of shared/bench/nanogpt_step.py (untied head) with RoPE; `overrides` ("key=value", as
// `train --set`) switch schemes or attention settings to time them on the same model.
RunConfig reference_config(const std::vector<std::string>& overrides) {
  nlohmann::json document = {
      {"name", "bench"},
      {"model", {{"vocab_size", 256}, {"d_model", 256}, {"n_layers", 4}, {"n_heads", 4}, {"d_mlp", 1024},
                 {"dropout", 0.0}, {"bias", true}, {"tie_embeddings", false}}},
      {"position", {{"scheme", "rope"}}},
      {"data", {{"dataset", "(none: random tokens)"}, {"train_length", 256}}}};
  for (const auto& assignment : overrides) apply_override(document, assignment);
  return config_from_json(document, "bench --set");
}

// Best of a few 2048^3 matmuls in the runtime's precision: what this machine's BLAS can do at its best.
double matmul_peak_gflops(const Runtime& runtime) {
  const int64_t n = 2048;
  const auto options = torch::TensorOptions().device(runtime.device()).dtype(
      runtime.precision() == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat32);
  auto a = torch::randn({n, n}, options);
  auto b = torch::randn({n, n}, options);
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    const auto start = Clock::now();
    auto c = torch::matmul(a, b);
    (void)c.sum().item<float>();  // waits for the device
    best = std::max(best, 2.0 * n * n * n / seconds_since(start) / 1e9);
  }
  return best;
}

// Random tokens [batch, length + 1]. With documents, the last vocabulary id ends one every
// `document_length` tokens, at a different phase in each row, and appears nowhere else.
torch::Tensor random_windows(int64_t batch, int64_t length, int64_t vocab, int64_t document_length,
                             const torch::Device& device) {
  auto tokens = torch::randint(0, document_length > 0 ? vocab - 1 : vocab, {batch, length + 1},
                               torch::TensorOptions(torch::kInt64).device(device));
  for (int64_t r = 0; document_length > 0 && r < batch; ++r) {
    for (int64_t t = (r * 7) % document_length + 1; t <= length; t += document_length) tokens[r][t] = vocab - 1;
  }
  return tokens;
}

// Times options.steps training steps after options.warmup untimed ones: the train section of the results.
nlohmann::json time_training(GPT& model, const RunConfig& config, const Runtime& runtime, const BenchOptions& options,
                             const ProcessGroup& group) {
  const int64_t batch = options.batch, length = config.data.train_length;
  model->train();
  model->set_attention_block(options.attention_block);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamW optimizer(named, {0.9, 0.999, 1e-8, 0.01});  // torch.optim.AdamW defaults, as in the reference
  const int64_t vocab = config.model.vocab_size;
  const auto tokens = random_windows(batch, length, vocab, options.document_length, runtime.device());
  const DocumentOptions documents =
      options.document_length > 0 ? DocumentOptions{config.data.reset_positions, config.data.mask_documents, vocab - 1}
                                   : DocumentOptions{};
  const double grad_clip = config.train.grad_clip;  // as `extrap train` clips, 1.0 unless --set
  int64_t step = 0;
  // The very step `extrap train` runs, at a fixed learning rate (its loss.item() waits for the device).
  auto timed_step = [&] {
    const auto positions = training_positions(config.position_sampling, length, config.seed, step++, runtime.device());
    if (!train_step(model, optimizer, tokens, positions, 1e-3, grad_clip, runtime, {}, documents, group).applied) {
      throw std::runtime_error("bench: non-finite loss or gradient norm on random tokens");
    }
  };
  for (int i = 0; i < options.warmup; ++i) timed_step();
  if (std::getenv("EXTRAP_PROFILE")) {
    torch::autograd::profiler::RecordProfile guard(std::getenv("EXTRAP_PROFILE"));
    for (int i = 0; i < 3; ++i) timed_step();
  }
  const auto start = Clock::now();
  for (int i = 0; i < options.steps; ++i) timed_step();
  const double step_seconds = seconds_since(start) / options.steps;
  const double peak_rss = peak_rss_mib();
  const auto& m = config.model;
  // 6 N per token for forward+backward, plus causal attention counted at half of 12 L B T^2 d
  // (the formula of shared/bench/nanogpt_step.py).
  const double flops = 6.0 * double(model->parameter_count()) * batch * length +
                       12.0 * m.n_layers * batch * double(length) * length * m.d_model / 2.0;
  const double gflops = flops / step_seconds / 1e9;
  const double peak = matmul_peak_gflops(runtime);
  return {{"step_ms", step_seconds * 1e3}, {"tokens_per_s", batch * length / step_seconds}, {"gflops", gflops},
          {"steps_timed", options.steps}, {"grad_clip", grad_clip}, {"peak_rss_mib", peak_rss},
          {"document_length", options.document_length},
          {"documents", {{"reset_positions", documents.reset_positions}, {"mask_documents", documents.mask_documents}}},
          {"matmul_peak_gflops", peak}, {"fraction_of_peak", gflops / peak}};
}

// One forward at `length` tokens without gradients (after one to warm caches): time and memory.
nlohmann::json time_eval(GPT& model, const RunConfig& config, const Runtime& runtime, int64_t length) {
  torch::NoGradGuard no_grad;
  const auto precision = runtime.precision_scope();
  model->eval();
  model->set_attention_block(256);
  const auto options = torch::TensorOptions(torch::kInt64).device(runtime.device());
  const auto tokens = torch::randint(0, config.model.vocab_size, {1, length}, options);
  const auto positions = evaluation_positions(config.position_sampling, length, runtime.device());
  (void)model->forward(tokens, positions).sum().item<float>();  // warm caches
  const auto start = Clock::now();
  (void)model->forward(tokens, positions).sum().item<float>();
  const double seconds = seconds_since(start);
  return {{"length", length}, {"seconds", seconds}, {"tokens_per_s", length / seconds}, {"peak_rss_mib", peak_rss_mib()}};
}

// After the data-parallel steps: the same steps on rank 0 alone (the others idle at a barrier),
// and the scaling efficiency = tokens/s per process together / tokens/s alone.
nlohmann::json data_parallel_results(nlohmann::json result, GPT& model, const RunConfig& config, const Runtime& runtime,
                                     const BenchOptions& options, const ProcessGroup& group) {
  nlohmann::json alone;
  if (group.is_root() && options.steps > 0) alone = time_training(model, config, runtime, options, ProcessGroup{});
  group.barrier();
  if (!group.is_root()) return nlohmann::json::object();
  result["data_parallel"] = {{"world_size", group.size()}, {"backend", group.backend()},
                             {"launcher", group.env().launcher}};
  if (options.steps > 0) {
    const double per_process = result["train"]["tokens_per_s"].get<double>();
    const double single = alone["tokens_per_s"].get<double>();
    result["data_parallel"].update({{"tokens_per_s_per_process", per_process},
                                    {"tokens_per_s_total", per_process * group.size()},
                                    {"tokens_per_s_alone", single},
                                    {"scaling_efficiency", per_process / single}});
  }
  return result;  // no eval forward: it would time one process's work, not the group's
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& options) {
  const Runtime runtime(options.device, options.precision);
  const ProcessGroup group = join_launcher_group(options.device, options.collective_timeout_s);
  const RunConfig config = reference_config(options.overrides);
  torch::manual_seed(0);
  GPT model = build_model(config);
  runtime.place(model);
  if (!options.attention_kernel.empty()) {  // to time the kernels side by side
    model->set_attention_kernel(parse_enum(kAttentionKernelNames, options.attention_kernel, "--attention-kernel"),
                                runtime.precision() == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat32);
  }
  const auto& m = config.model;
  nlohmann::json result = {
      {"model", {{"d_model", m.d_model}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads},
                 {"train_length", config.data.train_length}, {"batch", options.batch}, {"vocab", m.vocab_size},
                 {"scheme", config.position.scheme}, {"overrides", options.overrides},
                 {"parameters", model->parameter_count()}}},
      {"device", options.device},
      {"precision", enum_name(kPrecisionNames, runtime.precision())},
      {"attention_kernel", options.attention_kernel.empty() ? "auto" : options.attention_kernel},
      {"threads", torch::get_num_threads()}};
  // Training first: peak RSS is a process-wide maximum, so the train figure excludes the evaluation.
  if (options.steps > 0) result["train"] = time_training(model, config, runtime, options, group);
  if (group.distributed()) return data_parallel_results(result, model, config, runtime, options, group);
  if (options.eval_length > 0) result["eval"] = time_eval(model, config, runtime, options.eval_length);
  return result;
}

}  // namespace extrap
