#pragma once
// A position scheme plugs into the model through a few hooks and implements only those it needs:
//   input_embedding  added to the token embeddings (learned, sinusoidal)
//   transform_qk     rotates or rescales queries and keys before the scores (RoPE family, xPos); may
//                    also supply more query/key pairs and the rule that merges their scores (ReRoPE,
//                    Self-Extend, STRING, Dual Chunk Attention)
//   score_bias       additive bias on a block of attention scores (ALiBi, T5, KERPLE, ...)
//   after_optimizer_step  projects constrained parameters back into their set (KERPLE)
// Position-id transforms (random or interpolated positions) happen before the hooks, in Positions.
// The model and attention code call the hooks and never branch on a scheme's name. Schemes are
// torch modules so that learnable parameters are registered, saved and optimized like any other.
#include <torch/torch.h>

#include "common/text.h"
#include "position/pass_rule.h"
#include "position/scheme_info.h"

namespace extrap {

// Positions of the tokens in one window: one row shared by the batch, or one row per window when
// positions restart at each document (data.reset_positions). Stored in float64 so that angles like
// position * theta keep full precision at long lengths before the cast to float32.
struct Positions {
  torch::Tensor values;  // [T], or [B, T] per row; float64
  bool is_arange = true; // values are exactly 0..T-1 (one row), so cached tables may be sliced
  int64_t size() const { return values.size(-1); }
  bool per_row() const { return values.dim() == 2; }
  Positions prefix(int64_t length) const { return {values.narrow(-1, 0, length), is_arange}; }

  static Positions arange(int64_t length, const torch::Device& device);
};

// Queries and keys as the attention kernels consume them, [B, H, T, head_dim] each. By default one
// pair scores every key. A scheme with a merged score adds pairs for farther keys and the rule that
// says which pair scores which (i, j): ReRoPE, Self-Extend and STRING score keys from a distance on
// with a second pair, Dual Chunk Attention the previous and earlier chunks with a second and third.
// Each pair is queries and keys rotated to that pass's positions. Kernels compute several passes only
// on tiles that straddle the rule's boundaries.
struct ScorePair {
  torch::Tensor q, k;
};

struct QueryKey {
  QueryKey() = default;
  QueryKey(torch::Tensor q, torch::Tensor k) : q(std::move(q)), k(std::move(k)) {}
  torch::Tensor q, k;                // pass 0
  std::vector<ScorePair> far_passes;  // passes 1, 2, ... (rule.passes() - 1 of them)
  PassRule rule;
  bool has_far() const { return !far_passes.empty(); }
  const torch::Tensor& query(int pass) const { return pass == 0 ? q : far_passes[pass - 1].q; }
  const torch::Tensor& key(int pass) const { return pass == 0 ? k : far_passes[pass - 1].k; }
  // Every pass's queries (pass 0 first), and every query and key tensor, for changes that apply to
  // all passes alike (a per-query scale, a cast).
  std::vector<torch::Tensor*> queries();
  std::vector<torch::Tensor*> tensors();
};

// Every hook takes per-row positions as well: each batch row then gets its own embedding, rotation
// or bias (leading dimension B).
class PositionScheme : public torch::nn::Module {
 public:
  // [T, d_model] ([B, T, d_model] for per-row positions) to add to the token embeddings, or an
  // undefined tensor.
  virtual torch::Tensor input_embedding(const Positions& positions) { return {}; }
  // Replaces qk.q and qk.k by their transformed versions (and may add far passes and their rule).
  virtual void transform_qk(QueryKey& qk, const Positions& positions) {}
  // Bias for query rows [q_begin, q_end) against key columns [k_begin, k_end), broadcastable to
  // [B, H, q_end - q_begin, k_end - k_begin] ([B, H, ...] for per-row positions); an undefined
  // tensor means no bias. It may differ from the mathematical bias by a constant per query row,
  // which softmax ignores: a row-independent [H, 1, keys] bias is then enough, and the attention
  // kernels never materialise the full tile.
  virtual torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                                   int64_t k_end) {
    return {};
  }
  // Called by the trainer after every optimizer step: schemes with constrained parameters project
  // them back into their set here, so checkpoints always hold valid values.
  virtual void after_optimizer_step() {}
};

// Builds a registered scheme from resolved params (see resolve_scheme_params).
std::shared_ptr<PositionScheme> make_scheme(const std::string& name, const nlohmann::json& params,
                                            const ModelShape& shape);

// Reads a typed parameter from resolved params; the registry already checked presence and type.
template <typename T>
T param(const nlohmann::json& params, const char* key) {
  return params.at(key).get<T>();
}

// Throws UserError("<key>: <problem>") for use inside scheme factories.
[[noreturn]] void reject_param(const std::string& key, const std::string& problem);

// The hooks (kEmbeddingHook | kQueryKeyHook | kBiasHook) that class S overrides or inherits from a
// scheme other than PositionScheme: &S::f names PositionScheme's member only when S leaves f alone.
template <typename S>
constexpr unsigned overridden_hooks() {
  unsigned hooks = 0;
  if (!std::is_same_v<decltype(&S::input_embedding), decltype(&PositionScheme::input_embedding)>) hooks |= kEmbeddingHook;
  if (!std::is_same_v<decltype(&S::transform_qk), decltype(&PositionScheme::transform_qk)>) hooks |= kQueryKeyHook;
  if (!std::is_same_v<decltype(&S::score_bias), decltype(&PositionScheme::score_bias)>) hooks |= kBiasHook;
  return hooks;
}

// Completes `info` for scheme class S with typed parameters: `read(params, shape)` checks the
// resolved JSON params and returns S's parameter struct (throwing UserError through reject_param);
// `build(typed, shape)` constructs S. Validation calls only `read`, so it builds nothing and draws
// no random numbers. Hooks are declared here and checked at compile time against S.
template <typename S, unsigned Hooks, typename Read, typename Build>
SchemeInfo define_scheme(SchemeInfo info, Read read, Build build) {
  static_assert((Hooks & (kEmbeddingHook | kQueryKeyHook | kBiasHook)) == overridden_hooks<S>(),
                "the declared hooks must be exactly those the scheme class implements");
  info.hooks = Hooks;
  info.check = [read](const nlohmann::json& params, const ModelShape& shape) { (void)read(params, shape); };
  info.create = [read, build](const nlohmann::json& params, const ModelShape& shape) -> std::shared_ptr<PositionScheme> {
    return build(read(params, shape), shape);
  };
  return info;
}

// The `base` parameter of rotary and sinusoidal schemes, checked to be > 1.
double read_base(const nlohmann::json& params);

// For schemes without parameters.
struct NoParams {};
inline NoParams read_no_params(const nlohmann::json&, const ModelShape&) { return {}; }

}  // namespace extrap

// Registers a scheme from its own .cpp file at static-initialisation time; the argument is a
// SchemeInfo (usually from define_scheme).
#define EXTRAP_REGISTER_SCHEME(tag, ...) \
  static const bool extrap_scheme_registered_##tag = ::extrap::register_scheme(__VA_ARGS__)
