// Validation and resolution of a merged config document into a RunConfig.
#include "config/config.h"

#include "common/error.h"
#include "common/json_kind.h"
#include "config/fields.h"
#include "config/layers.h"
#include "position/scheme_info.h"

namespace extrap {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& key, const std::string& problem) { throw UserError(key + ": " + problem); }

void check_against_schema(const json& given, const json& schema, const std::string& prefix) {
  std::vector<std::string> known;
  for (auto s = schema.begin(); s != schema.end(); ++s) known.push_back(s.key());
  check_known_keys(given, prefix, known, /*allow_comments=*/prefix.empty());
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (key == "position" || !schema.contains(it.key())) continue;  // position: checked against its scheme
    if (key == "layers") {  // entries are checked when the layers are resolved
      if (!it->is_array()) fail("layers", "expected an array of layer overrides");
      continue;
    }
    const json& expected = schema[it.key()];
    if (!json_kind_matches(expected, *it)) fail(key, "expected " + std::string(json_kind_name(expected)) + ", got " + it->dump());
    if (expected.is_object()) check_against_schema(*it, expected, key);
  }
}

PositionSampling resolve_position_sampling(json& document, int64_t train_length) {
  PositionSampling sampling = fields::read<PositionSampling>(document["position_sampling"], "position_sampling");
  if (sampling.range == 0) sampling.range = 8 * train_length;
  if (sampling.range < train_length) {
    fail("position_sampling.range", std::to_string(sampling.range) + " is shorter than data.train_length = " +
                                        std::to_string(train_length));
  }
  if (sampling.train == TrainPositions::kPose && sampling.chunks > train_length) {
    fail("position_sampling.chunks", std::to_string(sampling.chunks) + " pieces do not fit a window of data.train_length = " +
                                         std::to_string(train_length) + " tokens");
  }
  document["position_sampling"] = fields::write(sampling);
  return sampling;
}

void resolve(json& document, RunConfig& config, bool for_training) {
  config.name = document["name"].get<std::string>();
  const int64_t seed = document["seed"].get<int64_t>();
  if (seed < 0) fail("seed", "must be at least 0, got " + std::to_string(seed));
  config.seed = uint64_t(seed);

  ModelConfig& m = config.model = fields::read<ModelConfig>(document["model"], "model");
  if (m.d_model % m.n_heads != 0) {
    fail("model.d_model", std::to_string(m.d_model) + " is not divisible by model.n_heads = " + std::to_string(m.n_heads));
  }
  m.d_mlp = m.mlp_width();
  document["model"] = fields::write(m);

  config.data = fields::read<DataConfig>(document["data"], "data");
  if (config.data.dataset.empty()) fail("data.dataset", "required: a directory prepared by `extrap data`");
  config.train = fields::read<TrainConfig>(document["train"], "train");

  const ModelShape shape = config.shape();
  config.position = resolve_position(document["position"], "position", shape);
  document["position"] = config.position.to_json();
  resolve_layers(document, shape, config);
  config.position_sampling = resolve_position_sampling(document, config.data.train_length);
  check_position_sampling(config.position_sampling, config.schemes_in_use(), shape, for_training);
  check_documents(config.data, config.schemes_in_use());

  if (m.bias) {
    for (const auto& layer : config.layers) {
      if (layer.attention.qk_bias) {
        fail("attention.qk_bias", "model.bias = true already gives every projection a bias; Su's RoPE + Q/K bias "
                                  "means model.bias = false with attention.qk_bias = true");
      }
    }
  }
}

}  // namespace

void check_documents(const DataConfig& data, const std::vector<PositionConfig>& schemes) {
  if (!data.reset_positions) return;
  for (const auto& p : schemes) {
    const unsigned hooks = find_scheme(p.scheme).hooks;
    if (hooks & kChunkedPassHook) {
      fail("data.reset_positions", p.scheme + " merges its score passes by chunks of the window, which reset "
                                   "positions do not follow (leave reset_positions off)");
    }
    if ((hooks & kFarPassHook) && !data.mask_documents) {
      fail("data.reset_positions", p.scheme + " merges its score passes by token distance, which reset positions "
                                   "follow only within a document (set data.mask_documents too)");
    }
  }
}

std::vector<PositionConfig> RunConfig::schemes_in_use() const {
  std::vector<PositionConfig> schemes{position};
  for (const auto& p : layer_schemes) {
    if (!p.scheme.empty()) schemes.push_back(p);
  }
  return schemes;
}

int64_t RunConfig::max_length() const {
  int64_t shortest = 0;
  for (const auto& p : schemes_in_use()) {
    const int64_t limit = scheme_max_length(p, shape());
    if (limit > 0 && (shortest == 0 || limit < shortest)) shortest = limit;
  }
  return shortest;
}

json default_config() {
  const RunConfig defaults;
  return json{{"name", defaults.name},
              {"seed", defaults.seed},
              {"model", fields::write(defaults.model)},
              {"position", {{"scheme", defaults.position.scheme}}},
              {"attention", attention_json(AttentionConfig{})},
              {"layers", json::array()},
              {"position_sampling", fields::write(defaults.position_sampling)},
              {"data", fields::write(defaults.data)},
              {"train", fields::write(defaults.train)}};
}

RunConfig config_from_json(const json& given, const std::string& source, bool for_training) {
  RunConfig config;
  try {
    const json schema = default_config();
    check_against_schema(given, schema, "");
    json document = schema;
    merge_config(document, given, source);
    resolve(document, config, for_training);
    config.resolved = document;
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }
  return config;
}

namespace fields {
std::string range_problem(const InRange& range, const json& given) {
  return "must be in [" + format_number(range.low) + ", " + format_number(range.high) + (range.open_high ? ")" : "]") +
         ", got " + given.dump();
}
}  // namespace fields

}  // namespace extrap
