// Attention options available to every scheme: learned sink logits (gpt-oss), the output gate
// (Qwen's gated attention), Scalable-Softmax, and the inference-time temperatures (Llama 4's NoPE
// layers, DroPE's log-length one, a constant). Each against a reference written out here.
#include <cmath>
#include <functional>

#include <gtest/gtest.h>

#include "kernel_inputs.h"
#include "test_helpers.h"

#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::contains;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
using test::small_model;
using test::user_error_message;

// Every kernel's log-sum-exp, through y * sigmoid(lse - s), is the extra softmax column: outputs
// and the gradients of q, k, v, the far passes and the sink logits, under masks and merged scores.
TEST(SinkLogits, KernelsLogSumExpGivesTheExtraSoftmaxColumn) {
  const int64_t length = 27;
  const auto positions = Positions::arange(length, kCpu);
  PositionScheme no_bias;
  const auto weights = torch::randn({2, length, 3, 8});
  const std::pair<KeyMask, PassRule> cases[] = {{{}, {}}, {{6, 3}, {}}, {{}, {4, 0}}, {{9, 2}, {0, 5}}};
  for (const auto& [mask, rule] : cases) {
    for (const auto& [name, kernel] : test::every_kernel()) {
      SCOPED_TRACE(testing::Message() << name << " window " << mask.window << " far_from " << rule.far_from << " chunk "
                                      << rule.chunk);
      torch::manual_seed(71);
      auto in = test::random_kernel_inputs(length, true);
      auto reference_in = test::detached_copy(in);
      const auto sinks = torch::tensor({0.5f, -1.0f, 2.0f}).set_requires_grad(true);
      const auto reference_sinks = sinks.detach().clone().set_requires_grad(true);
      torch::Tensor lse;
      AttentionCall call{no_bias, positions, mask, 5, 0.5};
      call.log_sum_exp = &lse;
      const auto out = kernel(test::query_key(in, rule), in.v, call);
      ASSERT_TRUE(lse.defined());
      const auto sunk = out * torch::sigmoid(lse - sinks.view({1, 3, 1})).transpose(1, 2).unsqueeze(-1);
      (sunk * weights).sum().backward();
      const auto expected =
          naive_attention(test::query_key(reference_in, rule), reference_in.v, 0.5, {}, mask, {}, reference_sinks);
      (expected * weights).sum().backward();
      EXPECT_LT(max_abs_diff(sunk, expected), 1e-5);
      EXPECT_GT(max_abs_diff(sunk, naive_attention(test::query_key(reference_in, rule), reference_in.v, 0.5, {}, mask)),
                1e-3);
      const auto got = in.tensors(), want = reference_in.tensors();
      for (int t = 0; t < 3 + 2 * (rule.passes() - 1); ++t) {
        EXPECT_LT(max_abs_diff(got[t]->grad(), want[t]->grad()), 1e-5) << "input " << t;
      }
      EXPECT_LT(max_abs_diff(sinks.grad(), reference_sinks.grad()), 1e-5);
      EXPECT_GT(sinks.grad().abs().min().item<double>(), 1e-4);
    }
  }
}

// The layer written out with full matrices from its own weights (NoPE, no bias): q, k, v from the
// qkv projection, the query factors `factor(h, i)`, an optional sink column, then the gate and the
// output projection.
torch::Tensor naive_layer(CausalSelfAttention& layer, const torch::Tensor& x, const KeyMask& mask,
                          const std::function<torch::Tensor(const torch::Tensor& q)>& scale_queries,
                          const torch::Tensor& sinks, const std::function<torch::Tensor(const torch::Tensor& y)>& gate) {
  const auto params = layer->named_parameters();
  const int64_t B = x.size(0), T = x.size(1), H = 2, hd = 8;
  const auto qkv = torch::matmul(x, params["qkv.weight"].t()).view({B, T, 3, H, hd}).permute({2, 0, 3, 1, 4});
  QueryKey qk{scale_queries(qkv[0]), qkv[1]};
  auto y = naive_attention(qk, qkv[2], 1.0 / std::sqrt(double(hd)), {}, mask, {}, sinks);  // [B, T, H, hd]
  if (gate) y = gate(y);
  return torch::matmul(y.reshape({B, T, H * hd}), params["proj.weight"].t());
}

TEST(Ssmax, LayerScalesEachQueryByItsLearnedFactorTimesLogVisibleKeys) {
  torch::manual_seed(72);
  auto nope = make_scheme("nope", nlohmann::json::object(), {16, 2, 1, 12});
  AttentionConfig ssmax;
  ssmax.ssmax = true;
  ssmax.window = 4;  // n counts the visible keys: min(i + 1, 4)
  CausalSelfAttention layer(small_model(), ssmax, nope, 12);
  {
    torch::NoGradGuard no_grad;
    layer->named_parameters()["ssmax_scale"].copy_(torch::tensor({0.43f, 1.5f}));
  }
  const auto x = torch::randn({2, 12, 16});
  const auto weights = torch::randn({2, 12, 16});
  (layer->forward(x, Positions::arange(12, kCpu)) * weights).sum().backward();
  const auto s = torch::tensor({0.43f, 1.5f}).set_requires_grad(true);
  const auto n = torch::clamp_max(torch::arange(1, 13, torch::kFloat32), 4.0);
  const auto expected = naive_layer(layer, x, {4, 0}, [&](const torch::Tensor& q) {
    return q * (s.view({1, 2, 1, 1}) * n.log().view({1, 1, 12, 1}));
  }, {}, {});
  (expected * weights).sum().backward();
  EXPECT_LT(max_abs_diff(layer->forward(x, Positions::arange(12, kCpu)), expected), 1e-5);
  EXPECT_LT(max_abs_diff(layer->named_parameters()["ssmax_scale"].grad(), s.grad()), 1e-5);
  EXPECT_GT(s.grad().abs().min().item<double>(), 1e-4);
}

TEST(SinkLogits, LayerMatchesTheExtraColumnAndLearnsIt) {
  torch::manual_seed(73);
  auto nope = make_scheme("nope", nlohmann::json::object(), {16, 2, 1, 12});
  AttentionConfig sink;
  sink.sink_logit = true;
  CausalSelfAttention layer(small_model(), sink, nope, 12);
  {
    torch::NoGradGuard no_grad;
    layer->named_parameters()["sink_logit"].copy_(torch::tensor({0.3f, -0.7f}));
  }
  const auto x = torch::randn({2, 12, 16});
  const auto expected = naive_layer(layer, x, {}, [](const torch::Tensor& q) { return q; }, torch::tensor({0.3f, -0.7f}), {});
  const auto got = layer->forward(x, Positions::arange(12, kCpu));
  EXPECT_LT(max_abs_diff(got, expected), 1e-5);
  got.sum().backward();
  EXPECT_GT(layer->named_parameters()["sink_logit"].grad().abs().min().item<double>(), 1e-4);
}

TEST(OutputGate, HeadAndElementwiseGatesMultiplyTheAttentionOutput) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(74);
  auto nope = make_scheme("nope", nlohmann::json::object(), {16, 2, 1, 12});
  const auto x = torch::randn({2, 12, 16});
  for (const OutputGate kind : {OutputGate::kHead, OutputGate::kElementwise}) {
    AttentionConfig gated;
    gated.output_gate = kind;
    CausalSelfAttention layer(small_model(), gated, nope, 12);
    const auto gate_weight = layer->named_parameters()["gate.weight"];
    ASSERT_EQ(gate_weight.size(0), kind == OutputGate::kHead ? 2 : 16);
    const auto expected = naive_layer(layer, x, {}, [](const torch::Tensor& q) { return q; }, {}, [&](const torch::Tensor& y) {
      const auto g = torch::sigmoid(torch::matmul(x, gate_weight.t()));  // [B, T, H] or [B, T, D]
      return y * (kind == OutputGate::kHead ? g.unsqueeze(-1) : g.view({2, 12, 2, 8}));
    });
    EXPECT_LT(max_abs_diff(layer->forward(x, Positions::arange(12, kCpu)), expected), 1e-5);
  }
}

TEST(Temperatures, QueryFactorsFollowTheirFormulas) {
  AttentionConfig llama4;
  llama4.temperature = Temperature::kLlama4;
  llama4.temperature_floor = 8;
  auto scales = query_scales(llama4, 40, 16);
  for (int64_t i : {0, 6, 7, 15, 39}) {
    EXPECT_NEAR(scales[i].item<double>(), 1.0 + 0.1 * std::log(std::floor(double(i + 1) / 8.0) + 1.0), 1e-6) << i;
  }
  llama4.temperature_floor = 0;  // floor_scale = train_length
  EXPECT_NEAR(query_scales(llama4, 40, 16)[39].item<double>(), 1.0 + 0.1 * std::log(3.0), 1e-6);
  AttentionConfig drope;
  drope.temperature = Temperature::kLogLength;
  EXPECT_NEAR(query_scales(drope, 512, 128)[3].item<double>(), 1.0 + 0.412 * std::log(4.0), 1e-6);
  EXPECT_NEAR(query_scales(drope, 64, 128)[3].item<double>(), 1.0, 1e-7);
  drope.temperature_scale = 0.103;  // DroPE's SmolLM value
  EXPECT_NEAR(query_scales(drope, 512, 128)[511].item<double>(), 1.0 + 0.103 * std::log(4.0), 1e-6);
  AttentionConfig constant;
  constant.temperature = Temperature::kConstant;
  constant.temperature_scale = 1.25;
  constant.logn = LognMode::kInference;  // factors multiply: 1.25 * max(1, log_16(i + 1))
  EXPECT_NEAR(query_scales(constant, 64, 16)[63].item<double>(), 1.25 * std::log(64.0) / std::log(16.0), 1e-5);
}

nlohmann::json config_with(const nlohmann::json& attention) {
  return {{"model", {{"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}, {"vocab_size", 64}}},
          {"data", {{"dataset", "/nonexistent"}, {"train_length", 16}}},
          {"attention", attention}};
}

TEST(AttentionOptions, BadValuesAreOneLineErrors) {
  const auto message = [](const nlohmann::json& attention) {
    return user_error_message([&] { config_from_json(config_with(attention), "c.json"); });
  };
  EXPECT_EQ(message({{"ssmax", true}, {"logn", "train"}}),
            "c.json: attention.ssmax: Scalable-Softmax scales the logits by log n itself; leave logn at \"none\"");
  EXPECT_EQ(message({{"temperature", "constant"}}),
            "c.json: attention.temperature_scale: temperature \"constant\" needs the factor (temperature_scale > 0)");
  EXPECT_TRUE(contains(message({{"temperature", "hot"}}), "attention.temperature")) << message({{"temperature", "hot"}});
  EXPECT_TRUE(contains(message({{"output_gate", "channel"}}), "attention.output_gate"));
  EXPECT_TRUE(contains(message({{"ssmax_init", -1.0}}), "attention.ssmax_init"));
  EXPECT_TRUE(contains(message({{"sink_logit", 1}}), "attention.sink_logit: expected a boolean"));
  config_from_json(config_with({{"sink_logit", true}, {"output_gate", "head"}, {"ssmax", true}}), "c.json");
}

}  // namespace
}  // namespace extrap
