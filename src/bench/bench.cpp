#include "bench/bench.h"

#include <chrono>

#include "common/runtime.h"
#include "config/config.h"
#include "model/gpt.h"
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

// Best of a few 2048^3 float32 matmuls: what this machine's BLAS can do at its best.
double matmul_peak_gflops(const torch::Device& device) {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device));
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    const auto start = Clock::now();
    auto c = torch::matmul(a, b);
    if (device.is_cuda()) torch::cuda::synchronize();
    (void)c.sum().item<float>();
    best = std::max(best, 2.0 * n * n * n / seconds_since(start) / 1e9);
  }
  return best;
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& options) {
  const torch::Device device = resolve_device(options.device);
  const RunConfig config = reference_config(options.overrides);
  const int64_t batch = 16, length = config.data.train_length;
  torch::manual_seed(0);
  GPT model = build_model(config);
  model->to(device);
  model->train();
  model->set_attention_block(options.attention_block);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamW optimizer(named, {0.9, 0.999, 1e-8, 0.01});  // torch.optim.AdamW defaults, as in the reference
  const auto tokens = torch::randint(0, config.model.vocab_size, {batch, length + 1}, torch::TensorOptions(torch::kInt64).device(device));
  const double grad_clip = config.train.grad_clip;  // as `extrap train` clips, 1.0 unless --set
  int64_t step = 0;
  // The very step `extrap train` runs, at a fixed learning rate.
  auto timed_step = [&] {
    const auto positions = training_positions(config.position_sampling, length, config.seed, step++, device);
    if (!train_step(model, optimizer, tokens, positions, 1e-3, grad_clip).applied) {
      throw std::runtime_error("bench: non-finite loss or gradient norm on random tokens");
    }
  };
  for (int i = 0; i < options.warmup; ++i) timed_step();
  if (std::getenv("EXTRAP_PROFILE")) {
    torch::autograd::profiler::RecordProfile guard(std::getenv("EXTRAP_PROFILE"));
    for (int i = 0; i < 3; ++i) timed_step();
  }
  auto start = Clock::now();
  for (int i = 0; i < options.steps; ++i) timed_step();
  const double step_seconds = seconds_since(start) / options.steps;

  const int64_t params = model->parameter_count();
  const auto& m = config.model;
  // 6 N per token for forward+backward, plus causal attention counted at half of 12 L B T^2 d
  // (the formula of shared/bench/nanogpt_step.py).
  const double flops = 6.0 * params * batch * length + 12.0 * m.n_layers * batch * length * length * m.d_model / 2.0;

  torch::NoGradGuard no_grad;
  model->eval();
  model->set_attention_block(256);
  const auto eval_tokens = torch::randint(0, m.vocab_size, {1, options.eval_length}, torch::TensorOptions(torch::kInt64).device(device));
  const auto eval_positions = evaluation_positions(config.position_sampling, options.eval_length, device);
  (void)model->forward(eval_tokens, eval_positions).sum().item<float>();  // warm caches
  start = Clock::now();
  (void)model->forward(eval_tokens, eval_positions).sum().item<float>();
  const double eval_seconds = seconds_since(start);
  const double peak = matmul_peak_gflops(device);

  const double gflops = flops / step_seconds / 1e9;
  return {{"model", {{"d_model", m.d_model}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads}, {"train_length", length},
                     {"batch", batch}, {"vocab", m.vocab_size}, {"scheme", config.position.scheme}, {"overrides", options.overrides},
                     {"parameters", params}}},
          {"device", options.device},
          {"threads", torch::get_num_threads()},
          {"train", {{"step_ms", step_seconds * 1e3}, {"tokens_per_s", batch * length / step_seconds}, {"gflops", gflops},
                     {"steps_timed", options.steps}, {"grad_clip", grad_clip}}},
          {"eval", {{"length", options.eval_length}, {"seconds", eval_seconds},
                    {"tokens_per_s", options.eval_length / eval_seconds}, {"peak_rss_mib", peak_rss_mib()}}},
          {"matmul_peak_gflops", peak},
          {"fraction_of_peak", gflops / peak}};
}

}  // namespace extrap
