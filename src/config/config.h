#pragma once
// Run configuration: JSON files with `extends`, `--set key=value` overrides, defaults, and strict
// validation (unknown keys, wrong types and impossible values are errors naming file, key and value).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "position/scheme_info.h"

namespace extrap {

struct ModelConfig {
  int64_t vocab_size = 257;
  int64_t d_model = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_mlp = 512;
  double dropout = 0.0;
  bool bias = true;
  bool tie_embeddings = true;
  int64_t head_dim() const { return d_model / n_heads; }
};

// The scheme name plus its parameters exactly as resolved (defaults filled in by the registry).
struct PositionConfig {
  std::string scheme = "rope";
  nlohmann::json params = nlohmann::json::object();
};

// Attention modifiers of one layer (the model-wide "attention" object, overridable per layer).
struct AttentionConfig {
  int64_t window = 0;                   // local attention: query i sees keys i-w+1..i (0: full causal)
  double window_receptive_field = 0.0;  // HWFA rule: choose w so that the windowed layers' receptive
                                        // field (w-1)*layers+1 is at most this fraction of the training
                                        // length (resolved into `window`)
  int64_t sinks = 0;                    // with a window: the first tokens stay visible (Λ-shaped mask)
  std::string logn = "none";            // none | train | inference: log-n scaling of the queries
  int64_t logn_floor = 16;              // `train`: n = max(visible keys, floor)
  std::string qk_norm = "none";         // none | query (QNA) | key (KNA, KeyNorm) | cosine (CosA)
  std::string cosine_scale = "fixed";   // CosA's 4 log n: fixed n = train_length/2, or position (n = i+1)
  bool qk_bias = false;                 // a learned bias on queries and keys only (Su's RoPE + bias)
};

// One layer as built: its scheme (the model-wide one or a `layers` override) and attention modifiers.
struct LayerConfig {
  int scheme_group = -1;  // -1: the model-wide scheme; otherwise the index of the `layers` entry
  AttentionConfig attention;
};

// Position ids fed to the schemes. Training may replace 0..T-1 by random positions (Ruoss et al.:
// a sorted sample without replacement from [0, range); Su's equal-mean variant: T evenly spaced float
// positions over [0, n] with n ~ Exponential(mean T)); evaluation uses 0..T-1 or T evenly spaced
// positions over [0, range).
struct PositionSampling {
  std::string train = "ordinary";  // ordinary | random | equal_mean
  int64_t range = 0;               // random / spread: positions in [0, range); 0 means 8 x train_length
  std::string eval = "ordinary";   // ordinary | spread
};

struct DataConfig {
  std::string dataset;
  int64_t train_length = 128;
};

struct TrainConfig {
  int64_t batch_size = 32;
  int64_t steps = 300;
  double lr = 2e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup_steps = 50;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;
  int64_t log_interval = 10;
  int64_t eval_interval = 100;
  int64_t eval_tokens = 16384;
  int64_t checkpoint_interval = 100;
  int64_t keep_checkpoints = 2;
};

struct RunConfig {
  std::string name;
  uint64_t seed = 1234;
  ModelConfig model;
  PositionConfig position;                   // the model-wide scheme
  std::vector<PositionConfig> layer_schemes;  // one per `layers` entry (scheme "" when it sets no position)
  std::vector<LayerConfig> layers;            // resolved, one per model layer
  PositionSampling position_sampling;
  DataConfig data;
  TrainConfig train;
  nlohmann::json resolved;  // the full resolved JSON, written to the run directory
  // The scheme layer `l` runs with: its `layers` entry's, or the model-wide one.
  const PositionConfig& layer_position(std::size_t l) const {
    const int group = layers.at(l).scheme_group;
    return group < 0 ? position : layer_schemes.at(group);
  }
};

// The built-in defaults: also the schema (every accepted key, and its type) for config files.
nlohmann::json default_config();

// Loads `path`, follows `extends` chains (relative to each file), applies `overrides`
// ("model.d_model=256"; the value is parsed as JSON, else taken as a string), fills defaults and
// validates. Errors name the file and the dotted key.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Applies one "dotted.key=value" override to a config document (as `train --set` does); errors name `source`.
void apply_override(nlohmann::json& document, const std::string& assignment, const std::string& source);

// Builds a RunConfig from an already resolved JSON document (a run directory's config.json).
RunConfig config_from_json(const nlohmann::json& document, const std::string& source);

// Building blocks shared with evaluation-time treatments. Errors name `key` (e.g. "layers[1].position").
// A "position" object ({"scheme": name, ...params}) resolved against the registry and validated.
PositionConfig resolve_position(const nlohmann::json& position, const std::string& key, const ModelShape& shape);
nlohmann::json position_json(const PositionConfig& position);
// Attention settings as a complete JSON object, and back (with value checks).
nlohmann::json attention_json(AttentionConfig attention);
AttentionConfig read_attention(const nlohmann::json& complete, const std::string& key);
// `overlay` merged over a complete attention object; unknown keys and wrong types are errors.
nlohmann::json merge_attention(nlohmann::json base, const nlohmann::json& overlay, const std::string& key);
// Throws UserError("position_sampling.<key>: ...") when a scheme cannot take the sampled positions:
// float positions into a table, positions beyond a scheme's range, or any remapped positions under
// a two-pass scheme (ReRoPE merges by token distance). `training`: check the training positions as
// well as the evaluation ones.
void check_position_sampling(const RunConfig& config, bool training);
// Layer indices from a list (negative counts from the end), a slice string "a:b", or "middle:F":
// F layers evenly inside the stack, floor(k n / (F + 1)) for k = 1..F (HWFA2's full layers).
std::vector<int64_t> select_layers(const nlohmann::json& selection, int64_t n_layers, const std::string& key);

}  // namespace extrap
