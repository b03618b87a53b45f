// Causality of the model with every scheme and per-layer mixes, attention block sizes, and the
// blockwise and fused attention kernels against full attention with schemes.
#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/gpt.h"
#include "position/alibi.h"
#include "position/rope.h"
#include "position/scheme.h"

namespace extrap {
namespace {

using test::build;
using test::kCpu;
using test::max_abs_diff;
using test::naive_attention;
using test::transform;
using test::blockwise;
using test::fused;
using test::rotate;

// ---- Model causality --------------------------------------------------------------------------

ModelConfig tiny_model() {
  ModelConfig config;
  config.vocab_size = 64;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 2;
  config.d_mlp = 64;
  config.dropout = 0.0;
  return config;
}

// Logits of `tokens` and of a copy with the token at `changed` replaced. In training mode (dropout)
// both forwards start from the same seed, so they draw the same dropout masks.
std::pair<torch::Tensor, torch::Tensor> logits_with_edit(GPT& model, const torch::Tensor& tokens, int64_t changed,
                                                         int64_t vocab) {
  const auto positions = Positions::arange(tokens.size(1), kCpu);
  auto edited = tokens.clone();
  edited.select(1, changed).add_(1).remainder_(vocab);
  torch::manual_seed(99);
  auto logits = model->forward(tokens, positions);
  torch::manual_seed(99);
  auto edited_logits = model->forward(edited, positions);
  return {logits, edited_logits};
}

void expect_causal(const torch::Tensor& logits, const torch::Tensor& edited_logits, int64_t changed) {
  const int64_t length = logits.size(1);
  EXPECT_LE(max_abs_diff(logits.slice(1, 0, changed), edited_logits.slice(1, 0, changed)), 1e-6)
      << "logits before the edited token changed";
  EXPECT_GT(max_abs_diff(logits.slice(1, changed, length), edited_logits.slice(1, changed, length)), 1e-4)
      << "no logit at or after the edited token changed";
}

TEST(ModelCausality, EverySchemeIsCausalWithSmallAttentionBlocks) {
  torch::NoGradGuard no_grad;
  const int64_t length = 40, changed = 25;
  ModelConfig config = tiny_model();
  const ModelShape shape{config.d_model, config.n_heads, config.n_layers, /*train_length=*/48};
  ASSERT_FALSE(registered_schemes().empty());
  for (const auto& info : registered_schemes()) {
    SCOPED_TRACE(info.name);
    const auto params = resolve_scheme_params(info, nlohmann::json::object());
    torch::manual_seed(21);
    const auto tokens = torch::randint(config.vocab_size, {2, length}, torch::kInt64);

    // Inference: 5 query blocks of 8 for 40 tokens.
    config.dropout = 0.0;
    GPT model(config, make_scheme(info.name, params, shape));
    model->eval();
    model->set_attention_block(8);
    const auto [logits, edited_logits] = logits_with_edit(model, tokens, changed, config.vocab_size);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, length, config.vocab_size}));
    {
      SCOPED_TRACE("eval mode");
      expect_causal(logits, edited_logits, changed);
    }

    // Training with dropout (attention dropout takes the unfused blockwise path).
    config.dropout = 0.1;
    GPT dropout_model(config, make_scheme(info.name, params, shape));
    dropout_model->train();
    dropout_model->set_attention_block(8);
    const auto [train_logits, edited_train_logits] = logits_with_edit(dropout_model, tokens, changed, config.vocab_size);
    {
      SCOPED_TRACE("training mode with dropout");
      expect_causal(train_logits, edited_train_logits, changed);
    }
  }
}

// Per-layer mixes: HWFA (window + RoPE layers, a full NoPE log-n layer), a window with sinks on
// every layer, and every registered scheme on one layer of a mixed model with QK-norm modifiers.
TEST(ModelCausality, PerLayerMixesAreCausal) {
  torch::NoGradGuard no_grad;
  const int64_t length = 40, changed = 25;
  const nlohmann::json base = {{"model", {{"d_model", 32}, {"n_layers", 3}, {"n_heads", 2}, {"vocab_size", 64}}},
                               {"data", {{"dataset", "/nonexistent"}, {"train_length", 16}}}};
  std::vector<nlohmann::json> mixes = {
      {{"attention", {{"window_receptive_field", 0.75}}},
       {"layers", {{{"layers", {-1}}, {"position", {{"scheme", "nope"}}},
                    {"attention", {{"window_receptive_field", 0.0}, {"logn", "train"}}}}}}},
      {{"position", {{"scheme", "alibi"}}}, {"attention", {{"window", 6}, {"sinks", 2}, {"logn", "inference"}}}},
      {{"position", {{"scheme", "rope"}}},
       {"attention", {{"sink_logit", true}, {"output_gate", "elementwise"}, {"ssmax", true}, {"temperature", "llama4"}}},
       {"layers", {{{"layers", {0}}, {"position", {{"scheme", "dual_chunk"}}}, {"attention", {{"output_gate", "head"}}}}}}},
  };
  for (const auto& info : registered_schemes()) {
    if (info.hooks & kEmbeddingHook) continue;  // model-wide only
    mixes.push_back({{"position", {{"scheme", "rope"}}},
                     {"attention", {{"qk_norm", "key"}}},
                     {"layers", {{{"layers", "1:2"}, {"position", {{"scheme", info.name}}},
                                  {"attention", {{"window", 5}, {"qk_norm", "cosine"}}}}}}});
  }
  for (const auto& mix : mixes) {
    SCOPED_TRACE(mix.dump());
    nlohmann::json document = base;
    document.update(mix);
    const RunConfig config = config_from_json(document, "mix");
    torch::manual_seed(23);
    GPT model = build_model(config);
    model->eval();
    model->set_attention_block(8);
    const auto tokens = torch::randint(64, {2, length}, torch::kInt64);
    const auto [logits, edited_logits] = logits_with_edit(model, tokens, changed, 64);
    expect_causal(logits, edited_logits, changed);
  }
}

TEST(ModelCausality, AttentionBlockSizeDoesNotChangeLogits) {
  torch::NoGradGuard no_grad;
  const ModelConfig config = tiny_model();
  const ModelShape shape{config.d_model, config.n_heads, config.n_layers, 48};
  for (const char* name : {"alibi", "rope", "learned"}) {
    SCOPED_TRACE(name);
    torch::manual_seed(22);
    GPT model(config, build(name, nlohmann::json::object(), shape));
    model->eval();
    const auto tokens = torch::randint(config.vocab_size, {2, 37}, torch::kInt64);
    const auto positions = Positions::arange(37, kCpu);
    model->set_attention_block(1000);
    const auto whole = model->forward(tokens, positions);
    model->set_attention_block(5);
    EXPECT_LT(max_abs_diff(whole, model->forward(tokens, positions)), 1e-5);
  }
}

// ---- Blockwise attention ----------------------------------------------------------------------

TEST(BlockwiseAttention, MatchesFullAttentionWithAlibi) {
  torch::manual_seed(31);
  const int64_t batch = 2, heads = 2, length = 40, head_dim = 8;
  auto q = torch::randn({batch, heads, length, head_dim});
  auto k = torch::randn({batch, heads, length, head_dim});
  auto v = torch::randn({batch, heads, length, head_dim});
  Alibi alibi(heads);
  const auto positions = Positions::arange(length, kCpu);
  const auto blocked = blockwise(q, k, v, alibi, positions, 7);
  const auto single = blockwise(q, k, v, alibi, positions, 1000);
  ASSERT_EQ(blocked.sizes(), (std::vector<int64_t>{batch, length, heads, head_dim}));
  EXPECT_LT(max_abs_diff(blocked, single), 1e-5);

  // Independent reference with the bias written out by hand: -slope_h * (i - j).
  auto bias = torch::empty({heads, length, length});
  const auto slopes = alibi_slopes(heads);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < length; ++i) {
      for (int64_t j = 0; j < length; ++j) bias[h][i][j] = -slopes[h] * double(i - j);
    }
  }
  EXPECT_LT(max_abs_diff(single, naive_attention(QueryKey{q, k}, v, 0.5, bias)), 1e-5);
  // The bias matters: without it the result is different.
  EXPECT_GT(max_abs_diff(single, naive_attention(QueryKey{q, k}, v, 0.5)), 1e-3);
}

TEST(BlockwiseAttention, MatchesFullAttentionWithRope) {
  torch::manual_seed(32);
  const int64_t batch = 2, heads = 2, length = 40, head_dim = 8;
  auto q = torch::randn({batch, heads, length, head_dim});
  auto k = torch::randn({batch, heads, length, head_dim});
  auto v = torch::randn({batch, heads, length, head_dim});
  Rope rope(head_dim, 10000.0);
  const auto positions = Positions::arange(length, kCpu);
  rotate(rope, q, k, positions);
  ASSERT_FALSE(rope.score_bias(positions, 0, length, 0, length).defined());
  const auto blocked = blockwise(q, k, v, rope, positions, 7);
  const auto single = blockwise(q, k, v, rope, positions, 1000);
  EXPECT_LT(max_abs_diff(blocked, single), 1e-5);
  EXPECT_LT(max_abs_diff(single, naive_attention(QueryKey{q, k}, v, 0.5)), 1e-5);
  // Block boundaries that do not divide the length, and one-row blocks.
  EXPECT_LT(max_abs_diff(blockwise(q, k, v, rope, positions, 1), single), 1e-5);
  EXPECT_LT(max_abs_diff(blockwise(q, k, v, rope, positions, 39), single), 1e-5);
}

// ---- Fused attention (the kernel used outside dropout training) -------------------------------

struct AttentionInputs {
  torch::Tensor q, k, v;
};

AttentionInputs random_inputs(int64_t length, bool requires_grad) {
  AttentionInputs in{torch::randn({2, 3, length, 8}), torch::randn({2, 3, length, 8}), torch::randn({2, 3, length, 8})};
  in.q.set_requires_grad(requires_grad);
  in.k.set_requires_grad(requires_grad);
  in.v.set_requires_grad(requires_grad);
  return in;
}

TEST(FusedAttention, ForwardMatchesBlockwiseWithAlibiAndRope) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(41);
  const int64_t length = 45;
  const auto positions = Positions::arange(length, kCpu);
  Alibi alibi(3);
  Rope rope(8, 10000.0);
  const auto in = random_inputs(length, false);
  for (PositionScheme* scheme : {static_cast<PositionScheme*>(&alibi), static_cast<PositionScheme*>(&rope)}) {
    // Queries and keys as the model hands them to the kernels: rotated by RoPE, unchanged by ALiBi.
    const QueryKey qk = transform(*scheme, in.q, in.k, positions);
    const auto reference = blockwise(qk.q, qk.k, in.v, *scheme, positions, 1000);
    if (scheme == &rope) {
      EXPECT_GT(max_abs_diff(reference, blockwise(in.q, in.k, in.v, rope, positions, 1000)), 1e-3)
          << "the rotation changes nothing";
    }
    for (int64_t block : {1, 7, 16, 45, 1000}) {
      SCOPED_TRACE(block);
      const auto result = fused(qk.q, qk.k, in.v, *scheme, positions, block);
      ASSERT_EQ(result.sizes(), reference.sizes());
      EXPECT_LT(max_abs_diff(result, reference), 1e-5);
    }
  }
}

TEST(FusedAttention, GradientsMatchBlockwiseWithAlibiAndRope) {
  torch::manual_seed(42);
  const int64_t length = 30;
  const auto positions = Positions::arange(length, kCpu);
  Alibi alibi(3);
  Rope rope(8, 10000.0);
  const auto weights = torch::randn({2, length, 3, 8});  // a loss that weighs every output differently
  for (PositionScheme* scheme : {static_cast<PositionScheme*>(&alibi), static_cast<PositionScheme*>(&rope)}) {
    const auto fused_in = random_inputs(length, true);
    AttentionInputs plain_in{fused_in.q.detach().clone().set_requires_grad(true),
                             fused_in.k.detach().clone().set_requires_grad(true),
                             fused_in.v.detach().clone().set_requires_grad(true)};
    // The gradients reach the raw queries and keys through the rotation.
    const QueryKey fused_qk = transform(*scheme, fused_in.q, fused_in.k, positions);
    const QueryKey plain_qk = transform(*scheme, plain_in.q, plain_in.k, positions);
    (fused(fused_qk.q, fused_qk.k, fused_in.v, *scheme, positions, 7) * weights).sum().backward();
    (blockwise(plain_qk.q, plain_qk.k, plain_in.v, *scheme, positions, 7) * weights).sum().backward();
    EXPECT_LT(max_abs_diff(fused_in.q.grad(), plain_in.q.grad()), 1e-5);
    EXPECT_LT(max_abs_diff(fused_in.k.grad(), plain_in.k.grad()), 1e-5);
    EXPECT_LT(max_abs_diff(fused_in.v.grad(), plain_in.v.grad()), 1e-5);
    EXPECT_GT(fused_in.k.grad().abs().max().item<double>(), 1e-3);
  }
}

}  // namespace
}  // namespace extrap
