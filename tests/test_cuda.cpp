// The CUDA path against the CPU path, for the kernels the runtime picks there (SDPA for plain
// scores, the tiled kernel for biases and far passes): logits and every parameter's gradient.
// Skipped where this LibTorch build or machine has no CUDA device.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "config/config.h"
#include "model/gpt.h"
#include "runtime/runtime.h"

namespace extrap {
namespace {

using nlohmann::json;

struct Pass {
  torch::Tensor logits;
  std::vector<torch::Tensor> grads;  // in named_parameters() order, on the CPU
};

Pass forward_backward(GPT& model, const Runtime& runtime, const torch::Tensor& tokens, const torch::Tensor& targets) {
  const auto positions = Positions::arange(tokens.size(1), runtime.device());
  torch::Tensor logits;
  {
    const auto precision = runtime.precision_scope();
    logits = model->forward(tokens.to(runtime.device()), positions);
  }
  torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.to(runtime.device()).reshape({-1})).backward();
  Pass pass{logits.detach().cpu(), {}};
  for (const auto& p : model->parameters()) pass.grads.push_back(p.grad().defined() ? p.grad().cpu() : torch::zeros_like(p).cpu());
  return pass;
}

double relative(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kFloat32) - want).norm().item<double>() / std::max(want.norm().item<double>(), 1e-12);
}

TEST(Cuda, ModelsMatchTheCpuOutputsAndGradients) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device in this LibTorch build or machine";
  const std::vector<std::pair<json, json>> cases{
      {{{"scheme", "rope"}}, json::object()},            // SDPA, causal
      {{{"scheme", "rope"}}, {{"window", 8}, {"sinks", 2}}},  // SDPA with a boolean mask
      {{{"scheme", "alibi"}}, json::object()},           // tiled, fixed bias
      {{{"scheme", "t5"}}, json::object()},              // tiled, learned bias: parameter gradients
      {{{"scheme", "rerope"}, {"window", 8}}, json::object()},  // tiled, far pass
  };
  for (const auto& [position, attention] : cases) {
    for (const Precision precision : {Precision::kFp32, Precision::kBf16}) {
      SCOPED_TRACE(position.dump() + attention.dump() + " " + enum_name(kPrecisionNames, precision));
      const json document = {{"name", "cuda"},
                             {"model", {{"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}}},
                             {"position", position},
                             {"attention", attention},
                             {"data", {{"dataset", "unused"}, {"train_length", 16}}}};
      const RunConfig config = config_from_json(document, "test_cuda");
      torch::manual_seed(5);
      GPT cpu = build_model(config);
      GPT gpu = build_model(config);
      {
        torch::NoGradGuard no_grad;
        const auto from = cpu->parameters();
        auto to = gpu->parameters();
        for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
      }
      const Runtime on_cpu("cpu", Precision::kFp32), on_gpu("cuda", precision);
      on_cpu.place(cpu);
      on_gpu.place(gpu);
      const auto tokens = torch::randint(0, 257, {2, 40}), targets = torch::randint(0, 257, {2, 40});
      const Pass want = forward_backward(cpu, on_cpu, tokens, targets);
      const Pass got = forward_backward(gpu, on_gpu, tokens, targets);
      const double tolerance = precision == Precision::kFp32 ? 1e-4 : 5e-2;
      EXPECT_LT(relative(got.logits, want.logits), tolerance);
      ASSERT_EQ(got.grads.size(), want.grads.size());
      for (std::size_t i = 0; i < got.grads.size(); ++i) EXPECT_LT(relative(got.grads[i], want.grads[i]), tolerance) << i;
    }
  }
}

}  // namespace
}  // namespace extrap
