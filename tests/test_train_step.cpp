// The training step shared by `extrap train` and `extrap bench`, and the model's post-update hook.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/gpt.h"
#include "position/scheme.h"
#include "train/adamw.h"
#include "train/step.h"

namespace extrap {
namespace {

const Runtime kCpuFp32("cpu", Precision::kFp32);

ModelConfig tiny_model() {
  ModelConfig model;
  model.vocab_size = 32;
  model.d_model = 16;
  model.n_layers = 2;
  model.n_heads = 2;
  model.d_mlp = 32;
  return model;
}

struct TinySetup {
  GPT model;
  AdamW optimizer;
  torch::Tensor windows;
  Positions positions;
};

TinySetup tiny_setup() {
  torch::manual_seed(5);
  GPT model(tiny_model(), make_scheme("nope", nlohmann::json::object(), {16, 2, 2, 8}));
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamW optimizer(named, {});
  auto windows = torch::randint(0, 32, {3, 9}, torch::kInt64);
  return {model, std::move(optimizer), windows, Positions::arange(8, torch::kCPU)};
}

std::vector<torch::Tensor> weights(GPT& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& p : model->parameters()) copies.push_back(p.detach().clone());
  return copies;
}

double gradient_norm(const AdamW& optimizer) {
  double squares = 0;
  for (const auto& p : optimizer.parameters()) {
    if (p.grad().defined()) squares += p.grad().pow(2).sum().item<double>();
  }
  return std::sqrt(squares);
}

TEST(TrainStep, ClipsTheGradientsAndReportsTheNormBeforeClipping) {
  auto setup = tiny_setup();
  const auto before = weights(setup.model);
  const StepResult result = train_step(setup.model, setup.optimizer, setup.windows, setup.positions, 1e-3, 0.01, kCpuFp32);
  ASSERT_TRUE(result.applied);
  EXPECT_NEAR(result.loss, std::log(32.0), 0.5);  // an untrained model is close to uniform
  EXPECT_GT(result.grad_norm, 0.1);               // far above the limit, so clipping acts
  EXPECT_NEAR(gradient_norm(setup.optimizer), 0.01, 1e-4);
  EXPECT_EQ(setup.optimizer.steps(), 1);
  const auto after = weights(setup.model);
  bool changed = false;
  for (std::size_t i = 0; i < before.size(); ++i) changed |= !torch::equal(before[i], after[i]);
  EXPECT_TRUE(changed);

  // grad_clip 0 measures the same norm and leaves the gradients as they are.
  auto unclipped = tiny_setup();
  const StepResult plain = train_step(unclipped.model, unclipped.optimizer, unclipped.windows, unclipped.positions,
                                      1e-3, 0.0, kCpuFp32);
  EXPECT_EQ(plain.loss, result.loss);
  EXPECT_NEAR(plain.grad_norm, result.grad_norm, 1e-6 * result.grad_norm);
  EXPECT_NEAR(gradient_norm(unclipped.optimizer), plain.grad_norm, 1e-5 * plain.grad_norm);
}

TEST(TrainStep, ANonFiniteLossStopsBeforeBackwardAndUpdate) {
  auto setup = tiny_setup();
  {
    torch::NoGradGuard no_grad;
    setup.model->parameters().front().fill_(std::numeric_limits<float>::quiet_NaN());  // wte.weight
  }
  const auto before = weights(setup.model);
  const StepResult result = train_step(setup.model, setup.optimizer, setup.windows, setup.positions, 1e-3, 1.0, kCpuFp32);
  EXPECT_FALSE(result.applied);
  EXPECT_TRUE(std::isnan(result.loss));
  EXPECT_TRUE(std::isnan(result.grad_norm));
  EXPECT_EQ(setup.optimizer.steps(), 0);
  for (const auto& p : setup.optimizer.parameters()) EXPECT_FALSE(p.grad().defined()) << "backward ran";
  const auto after = weights(setup.model);
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i].nan_to_num(), after[i].nan_to_num())) << "parameter " << i;
  }
}

// Counts its post-update calls.
class CountingScheme : public PositionScheme {
 public:
  void after_optimizer_step() override { ++calls; }
  int calls = 0;
};

TEST(AfterOptimizerStep, RunsEachDistinctSchemeOnce) {
  const ModelConfig model = tiny_model();
  RunConfig run;
  run.model = model;
  run.model.n_layers = 3;
  run.layers.assign(3, LayerConfig{});
  auto model_wide = std::make_shared<CountingScheme>();
  auto shared_by_two = std::make_shared<CountingScheme>();
  const std::vector<std::shared_ptr<PositionScheme>> layer_schemes{shared_by_two, model_wide, shared_by_two};
  GPT gpt(run, model_wide, layer_schemes);
  gpt->after_optimizer_step();
  EXPECT_EQ(model_wide->calls, 1);
  EXPECT_EQ(shared_by_two->calls, 1);

  // The training step runs it after every applied update.
  auto setup = tiny_setup();
  auto counting = std::make_shared<CountingScheme>();
  GPT counted(model, counting);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : counted->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamW optimizer(named, {});
  for (int i = 0; i < 2; ++i) train_step(counted, optimizer, setup.windows, setup.positions, 1e-3, 1.0, kCpuFp32);
  EXPECT_EQ(counting->calls, 2);
}

}  // namespace
}  // namespace extrap
