#pragma once
// Run configuration: JSON files with `extends`, `--set key=value` overrides, defaults, and strict
// validation (unknown keys, wrong types and impossible values are errors naming file, key and value).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  PositionConfig position;
  DataConfig data;
  TrainConfig train;
  nlohmann::json resolved;  // the full resolved JSON, written to the run directory
};

// The built-in defaults: also the schema (every accepted key, and its type) for config files.
nlohmann::json default_config();

// Loads `path`, follows `extends` chains (relative to each file), applies `overrides`
// ("model.d_model=256"; the value is parsed as JSON, else taken as a string), fills defaults and
// validates. Errors name the file and the dotted key.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Builds a RunConfig from an already resolved JSON document (a run directory's config.json).
RunConfig config_from_json(const nlohmann::json& document, const std::string& source);

}  // namespace extrap
