#include "config/config.h"

#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "common/json_kind.h"
#include "position/scheme_info.h"

namespace extrap {
namespace {

using nlohmann::json;

// Objects merge key by key; anything else is replaced. A different position scheme replaces the
// whole "position" object, because the old scheme's parameters mean nothing to the new one.
void merge_into(json& base, const json& overlay) {
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const bool replaces_scheme = it.key() == "position" && base.contains("position") && it->contains("scheme") &&
                                 base["position"].value("scheme", "") != (*it)["scheme"];
    if (it->is_object() && base.contains(it.key()) && base[it.key()].is_object() && !replaces_scheme) {
      merge_into(base[it.key()], *it);
    } else {
      base[it.key()] = *it;
    }
  }
}

json load_with_extends(const fs::path& path, std::vector<fs::path>& chain) {
  const fs::path canonical = fs::weakly_canonical(path);
  for (const auto& seen : chain) {
    if (seen == canonical) throw UserError(path.string() + ": extends: cycle back to " + seen.string());
  }
  if (!fs::exists(path)) throw UserError(path.string() + ": config file not found");
  chain.push_back(canonical);
  json document = read_json_file(path);
  if (!document.is_object()) throw UserError(path.string() + ": a config must be a JSON object");
  if (!document.contains("extends")) return document;
  const json parent_ref = document["extends"];
  if (!parent_ref.is_string()) throw UserError(path.string() + ": extends: must be a string (a path), got " + parent_ref.dump());
  document.erase("extends");
  json merged = load_with_extends(path.parent_path() / parent_ref.get<std::string>(), chain);
  merge_into(merged, document);
  return merged;
}

}  // namespace

void apply_override(json& document, const std::string& assignment, const std::string& source) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UserError(source + ": --set " + assignment + ": expected key=value, e.g. model.d_model=256");
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words are strings: --set position.scheme=alibi
  }
  json* node = &document;
  std::stringstream parts(key);
  std::string part;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    json& child = (*node)[path[i]];
    if (child.is_null()) child = json::object();
    if (!child.is_object()) throw UserError(source + ": --set " + key + ": " + path[i] + " is not an object");
    node = &child;
  }
  const bool changes_scheme = path.back() == "scheme" && path.size() == 2 && path[0] == "position" &&
                              node->value("scheme", default_config()["position"]["scheme"]) != value;
  if (changes_scheme) {
    *node = json::object();  // switching schemes drops the old scheme's parameters
  }
  (*node)[path.back()] = value;
}

namespace {

void check_against_schema(const json& given, const json& schema, const std::string& prefix, const std::string& source) {
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (key == "position") continue;  // checked against the chosen scheme's parameters
    if (prefix.empty() && it.key().rfind('_', 0) == 0) continue;  // "_comment": JSON has no comments
    if (key == "layers") {            // entries are checked when the layers are resolved
      if (!it->is_array()) throw UserError(source + ": layers: expected an array of layer overrides");
      continue;
    }
    if (!schema.contains(it.key())) {
      std::string known;
      for (auto s = schema.begin(); s != schema.end(); ++s) known += (known.empty() ? "" : ", ") + s.key();
      throw UserError(source + ": " + key + ": unknown key (known here: " + known + ")");
    }
    const json& expected = schema[it.key()];
    if (!json_kind_matches(expected, *it)) {
      throw UserError(source + ": " + key + ": expected " + json_kind_name(expected) + ", got " + it->dump());
    }
    if (expected.is_object()) check_against_schema(*it, expected, key, source);
  }
}

// Typed access to the resolved document with value checks that name the key.
class Checker {
 public:
  Checker(const json& document, std::string source) : document_(document), source_(std::move(source)) {}

  const json& at(const std::string& dotted) const {
    const json* node = &document_;
    std::stringstream parts(dotted);
    std::string part;
    while (std::getline(parts, part, '.')) node = &node->at(part);
    return *node;
  }
  int64_t positive(const std::string& key) const { return at_least(key, 1); }
  int64_t at_least(const std::string& key, int64_t low) const {
    const int64_t value = at(key).get<int64_t>();
    if (value < low) fail(key, "must be at least " + std::to_string(low) + ", got " + std::to_string(value));
    return value;
  }
  double in_range(const std::string& key, double low, double high, bool open_high) const {
    const double value = at(key).get<double>();
    if (value < low || value > high || (open_high && value == high)) {
      std::ostringstream range;
      range << "must be in [" << low << ", " << high << (open_high ? ")" : "]") << ", got " << at(key).dump();
      fail(key, range.str());
    }
    return value;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw UserError(source_ + ": " + key + ": " + problem);
  }

 private:
  const json& document_;
  std::string source_;
};

}  // namespace

json position_json(const PositionConfig& position) {
  json resolved = position.params;
  resolved["scheme"] = position.scheme;
  return resolved;
}

namespace {
json attention_defaults() { return attention_json(AttentionConfig{}); }

[[noreturn]] void fail(const std::string& key, const std::string& problem) { throw UserError(key + ": " + problem); }

void check_choice(const json& object, const std::string& prefix, const char* name,
                  std::initializer_list<const char*> choices) {
  const std::string value = object[name].get<std::string>();
  std::string known;
  for (const char* c : choices) {
    if (value == c) return;
    known += (known.empty() ? "" : ", ") + std::string(c);
  }
  fail(prefix + "." + name, "\"" + value + "\" is not one of " + known);
}
}  // namespace

// "position" objects name a scheme and its parameters; errors name `key` (e.g. layers[1].position).
PositionConfig resolve_position(const json& position, const std::string& key, const ModelShape& shape) {
  if (!position.is_object()) throw UserError(key + ": expected an object like {\"scheme\": \"rope\"}");
  if (!position.contains("scheme") || !position["scheme"].is_string()) {
    throw UserError(key + ".scheme: required: a string naming a registered scheme (see `extrap schemes`)");
  }
  PositionConfig config;
  config.scheme = position["scheme"].get<std::string>();
  json params = position;
  params.erase("scheme");
  try {
    const SchemeInfo& info = find_scheme(config.scheme);
    config.params = resolve_scheme_params(info, params);
    validate_scheme(config.scheme, config.params, shape);
  } catch (const UserError& e) {
    // Registry messages start with "position."; re-root them at this key.
    std::string message = e.what();
    if (message.rfind("position", 0) == 0) message = key + message.substr(8);
    throw UserError(message);
  }
  return config;
}

// Reads a fully merged attention object (all keys present, types checked).
AttentionConfig read_attention(const json& a, const std::string& key) {
  AttentionConfig config;
  config.window = a["window"].get<int64_t>();
  config.window_receptive_field = a["window_receptive_field"].get<double>();
  config.sinks = a["sinks"].get<int64_t>();
  config.logn = a["logn"].get<std::string>();
  config.logn_floor = a["logn_floor"].get<int64_t>();
  config.qk_norm = a["qk_norm"].get<std::string>();
  config.cosine_scale = a["cosine_scale"].get<std::string>();
  config.qk_bias = a["qk_bias"].get<bool>();
  if (config.window < 0) fail(key + ".window", "must be >= 0, got " + std::to_string(config.window));
  if (config.sinks < 0) fail(key + ".sinks", "must be >= 0, got " + std::to_string(config.sinks));
  if (config.sinks > 0 && config.window == 0 && config.window_receptive_field == 0) {
    fail(key + ".sinks", "sink tokens only make sense with a window (set " + key + ".window)");
  }
  if (config.window_receptive_field < 0 || config.window_receptive_field > 1) {
    fail(key + ".window_receptive_field", "must be in [0, 1] (a fraction of the training length), got " +
                                              a["window_receptive_field"].dump());
  }
  if (config.window > 0 && config.window_receptive_field > 0) {
    fail(key + ".window_receptive_field", "set either window or window_receptive_field, not both");
  }
  if (config.logn_floor < 1) fail(key + ".logn_floor", "must be >= 1, got " + std::to_string(config.logn_floor));
  check_choice(a, key, "logn", {"none", "train", "inference"});
  check_choice(a, key, "qk_norm", {"none", "query", "key", "cosine"});
  check_choice(a, key, "cosine_scale", {"fixed", "position"});
  return config;
}

json attention_json(AttentionConfig a) {
  a.window_receptive_field = 0.0;  // already resolved into the window
  return json{{"window", a.window},         {"window_receptive_field", a.window_receptive_field},
              {"sinks", a.sinks},           {"logn", a.logn},
              {"logn_floor", a.logn_floor}, {"qk_norm", a.qk_norm},
              {"cosine_scale", a.cosine_scale}, {"qk_bias", a.qk_bias}};
}

// An attention override merged over `base`, with unknown keys and wrong types rejected.
json merge_attention(json base, const json& overlay, const std::string& key) {
  if (!overlay.is_object()) fail(key, "expected an object of attention settings");
  const json defaults = attention_defaults();
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    if (!defaults.contains(it.key())) fail(key + "." + it.key(), "unknown attention setting");
    if (!json_kind_matches(defaults[it.key()], *it)) {
      fail(key + "." + it.key(), std::string("expected ") + json_kind_name(defaults[it.key()]) + ", got " + it->dump());
    }
    base[it.key()] = *it;
  }
  return base;
}

// Layer selections: a list of indices (negative ones count from the end), a Python-style slice
// string "a:b" (either bound may be omitted or negative), or "middle:F".
std::vector<int64_t> select_layers(const json& selection, int64_t n_layers, const std::string& key) {
  auto normalise = [&](int64_t index) {
    const int64_t resolved = index < 0 ? index + n_layers : index;
    if (resolved < 0 || resolved >= n_layers) {
      fail(key, "layer " + std::to_string(index) + " does not exist (model.n_layers = " + std::to_string(n_layers) + ")");
    }
    return resolved;
  };
  std::vector<int64_t> layers;
  if (selection.is_array()) {
    for (const auto& index : selection) {
      if (!index.is_number_integer()) fail(key, "expected layer indices (integers), got " + index.dump());
      layers.push_back(normalise(index.get<int64_t>()));
    }
  } else if (selection.is_string() && selection.get<std::string>().rfind("middle:", 0) == 0) {
    // Su's HWFA2 placement (Part 14): F layers at floor(k n / (F + 1)), k = 1..F.
    const std::string count = selection.get<std::string>().substr(7);
    const bool whole = !count.empty() && count.size() <= 6 && count.find_first_not_of("0123456789") == std::string::npos;
    const int64_t f = whole ? std::stoll(count) : 0;
    if (f < 1 || f > n_layers) {
      fail(key, "\"" + selection.get<std::string>() + "\": expected \"middle:F\" with 1 <= F <= model.n_layers = " +
                    std::to_string(n_layers));
    }
    for (int64_t k = 1; k <= f; ++k) layers.push_back(k * n_layers / (f + 1));
  } else if (selection.is_string()) {
    const std::string text = selection.get<std::string>();
    const auto colon = text.find(':');
    if (colon == std::string::npos) fail(key, "expected a slice like \"0:-1\", got \"" + text + "\"");
    auto bound = [&](const std::string& part, int64_t fallback) -> int64_t {
      if (part.empty()) return fallback;
      try {
        std::size_t used = 0;
        const int64_t value = std::stoll(part, &used);
        if (used != part.size()) throw std::invalid_argument(part);
        return std::clamp<int64_t>(value < 0 ? value + n_layers : value, 0, n_layers);
      } catch (const std::exception&) {
        fail(key, "bad slice bound \"" + part + "\" in \"" + text + "\"");
      }
    };
    const int64_t begin = bound(text.substr(0, colon), 0), end = bound(text.substr(colon + 1), n_layers);
    for (int64_t i = begin; i < end; ++i) layers.push_back(i);
  } else {
    fail(key, "expected a list of layer indices or a slice string like \"0:-1\"");
  }
  if (layers.empty()) fail(key, "selects no layer");
  return layers;
}

namespace {

// HWFA's rule (methods.md §3.7): the largest w with (w - 1) * windowed_layers + 1 <= fraction * N.
int64_t receptive_field_window(double fraction, int64_t train_length, int64_t windowed_layers) {
  const double budget = fraction * double(train_length) - 1.0;
  return std::max<int64_t>(1, int64_t(std::floor(budget / double(windowed_layers))) + 1);
}

void resolve_layers(json& document, const ModelShape& shape, RunConfig& config) {
  const int64_t n_layers = shape.n_layers;
  const json model_attention = merge_attention(attention_defaults(), document["attention"], "attention");
  std::vector<json> attention(n_layers, model_attention);
  config.layers.assign(n_layers, LayerConfig{});
  std::vector<std::string> owner(n_layers);
  json& entries = document["layers"];
  for (std::size_t e = 0; e < entries.size(); ++e) {
    const std::string key = "layers[" + std::to_string(e) + "]";
    json& entry = entries[e];
    if (!entry.is_object() || !entry.contains("layers")) {
      fail(key, "expected an object {\"layers\": [...], \"position\": {...}, \"attention\": {...}}");
    }
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      if (it.key() != "layers" && it.key() != "position" && it.key() != "attention") {
        fail(key + "." + it.key(), "unknown key (known here: layers, position, attention)");
      }
    }
    PositionConfig position{"", json::object()};  // empty scheme: the entry keeps the layers' scheme
    if (entry.contains("position")) {
      position = resolve_position(entry["position"], key + ".position", shape);
      const SchemeInfo& info = find_scheme(position.scheme);
      if (info.hooks & kEmbeddingHook) {
        fail(key + ".position.scheme", position.scheme + " adds an input embedding, which belongs to the whole model; "
                                                          "set it as the model-wide position instead");
      }
      entry["position"] = position_json(position);
    }
    config.layer_schemes.push_back(position);
    for (int64_t layer : select_layers(entry["layers"], n_layers, key + ".layers")) {
      if (!owner[layer].empty()) fail(key + ".layers", "layer " + std::to_string(layer) + " is also set by " + owner[layer]);
      owner[layer] = key;
      if (entry.contains("position")) config.layers[layer].scheme_group = int(e);
      if (entry.contains("attention")) attention[layer] = merge_attention(model_attention, entry["attention"], key + ".attention");
    }
  }
  int64_t windowed_by_rule = 0;
  for (int64_t layer = 0; layer < n_layers; ++layer) {
    const std::string key = owner[layer].empty() ? "attention" : owner[layer] + ".attention";
    config.layers[layer].attention = read_attention(attention[layer], key);
    if (config.layers[layer].attention.window_receptive_field > 0) ++windowed_by_rule;
  }
  for (auto& layer : config.layers) {
    AttentionConfig& a = layer.attention;
    if (a.window_receptive_field > 0) {
      a.window = receptive_field_window(a.window_receptive_field, shape.train_length, windowed_by_rule);
    }
  }
  // The resolved document spells out every setting, with the window the rule chose, so the run
  // directory is explicit and re-reading it gives the same layers.
  AttentionConfig model_wide = read_attention(model_attention, "attention");
  if (model_wide.window_receptive_field > 0) {
    model_wide.window = receptive_field_window(model_wide.window_receptive_field, shape.train_length, windowed_by_rule);
  }
  document["attention"] = attention_json(model_wide);
  for (std::size_t e = 0; e < entries.size(); ++e) {
    if (!entries[e].contains("attention")) continue;
    const int64_t first = select_layers(entries[e]["layers"], n_layers, "layers")[0];
    entries[e]["attention"] = attention_json(config.layers[first].attention);
  }
}

PositionSampling resolve_position_sampling(json& document, const RunConfig& config) {
  json& object = document["position_sampling"];
  check_choice(object, "position_sampling", "train", {"ordinary", "random", "equal_mean"});
  check_choice(object, "position_sampling", "eval", {"ordinary", "spread"});
  PositionSampling sampling;
  sampling.train = object["train"].get<std::string>();
  sampling.eval = object["eval"].get<std::string>();
  sampling.range = object["range"].get<int64_t>();
  const int64_t train_length = config.data.train_length;
  if (sampling.range == 0) sampling.range = 8 * train_length;
  if (sampling.range < train_length) {
    fail("position_sampling.range", std::to_string(sampling.range) + " is shorter than data.train_length = " +
                                        std::to_string(train_length));
  }
  object["range"] = sampling.range;
  return sampling;
}

}  // namespace

void check_position_sampling(const RunConfig& config, bool training) {
  const PositionSampling& sampling = config.position_sampling;
  const std::string train = training ? sampling.train : "ordinary";
  std::vector<PositionConfig> schemes{config.position};
  for (const auto& p : config.layer_schemes)
    if (!p.scheme.empty()) schemes.push_back(p);
  const ModelShape shape{config.model.d_model, config.model.n_heads, config.model.n_layers, config.data.train_length, 0};
  for (const auto& p : schemes) {
    const SchemeInfo& info = find_scheme(p.scheme);
    if (info.integer_positions && train == "equal_mean") {
      fail("position_sampling.train", p.scheme + " looks positions up in a table and cannot take the float "
                                                 "positions of equal_mean (use random)");
    }
    if ((info.hooks & kFarPassHook) && (train != "ordinary" || sampling.eval != "ordinary")) {
      fail(train != "ordinary" ? "position_sampling.train" : "position_sampling.eval",
           p.scheme + " merges its two score passes by token distance, which " +
               (train != "ordinary" ? train : sampling.eval) + " positions no longer follow (use ordinary)");
    }
    // Random and spread positions reach range - 1: a scheme with a finite range must cover it.
    const int64_t covered = scheme_max_length(p.scheme, p.params, shape);
    const bool sampled = train == "random" || sampling.eval == "spread";
    if (sampled && covered > 0 && covered < sampling.range) {
      fail("position_sampling.range", std::to_string(sampling.range) + " exceeds the " + std::to_string(covered) +
                                          " positions " + p.scheme + " can represent (lower the range" +
                                          (info.integer_positions ? " or raise position.max_positions)" : ")"));
    }
  }
}

json default_config() {
  const TrainConfig t;
  const ModelConfig m;
  const PositionSampling ps;
  return json{
      {"name", ""},
      {"seed", 1234},
      {"model",
       {{"vocab_size", m.vocab_size}, {"d_model", m.d_model}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads},
        {"d_mlp", 0}, {"dropout", m.dropout}, {"bias", m.bias}, {"tie_embeddings", m.tie_embeddings}}},
      {"position", {{"scheme", "rope"}}},
      {"attention", attention_defaults()},
      {"layers", json::array()},
      {"position_sampling", {{"train", ps.train}, {"range", ps.range}, {"eval", ps.eval}}},
      {"data", {{"dataset", ""}, {"train_length", 128}}},
      {"train",
       {{"batch_size", t.batch_size}, {"steps", t.steps}, {"lr", t.lr}, {"min_lr_ratio", t.min_lr_ratio},
        {"warmup_steps", t.warmup_steps}, {"weight_decay", t.weight_decay}, {"beta1", t.beta1}, {"beta2", t.beta2},
        {"eps", t.eps}, {"grad_clip", t.grad_clip}, {"log_interval", t.log_interval},
        {"eval_interval", t.eval_interval}, {"eval_tokens", t.eval_tokens},
        {"checkpoint_interval", t.checkpoint_interval}, {"keep_checkpoints", t.keep_checkpoints}}},
  };
}

RunConfig config_from_json(const json& given, const std::string& source) {
  const json schema = default_config();
  check_against_schema(given, schema, "", source);
  json document = schema;
  merge_into(document, given);

  const Checker check(document, source);
  RunConfig config;
  config.name = document["name"].get<std::string>();
  config.seed = static_cast<uint64_t>(check.at_least("seed", 0));

  ModelConfig& m = config.model;
  m.vocab_size = check.at_least("model.vocab_size", 2);
  m.d_model = check.positive("model.d_model");
  m.n_layers = check.positive("model.n_layers");
  m.n_heads = check.positive("model.n_heads");
  if (m.d_model % m.n_heads != 0) {
    check.fail("model.d_model", std::to_string(m.d_model) + " is not divisible by model.n_heads = " +
                                    std::to_string(m.n_heads));
  }
  m.d_mlp = check.at_least("model.d_mlp", 0);
  if (m.d_mlp == 0) m.d_mlp = 4 * m.d_model;  // 0 means the usual 4x expansion
  document["model"]["d_mlp"] = m.d_mlp;
  m.dropout = check.in_range("model.dropout", 0.0, 1.0, true);
  m.bias = document["model"]["bias"].get<bool>();
  m.tie_embeddings = document["model"]["tie_embeddings"].get<bool>();

  DataConfig& d = config.data;
  d.dataset = document["data"]["dataset"].get<std::string>();
  if (d.dataset.empty()) check.fail("data.dataset", "required: a directory prepared by `extrap data`");
  d.train_length = check.positive("data.train_length");

  TrainConfig& t = config.train;
  t.batch_size = check.positive("train.batch_size");
  t.steps = check.positive("train.steps");
  t.lr = check.in_range("train.lr", 1e-12, 10.0, false);
  t.min_lr_ratio = check.in_range("train.min_lr_ratio", 0.0, 1.0, false);
  t.warmup_steps = check.at_least("train.warmup_steps", 0);
  t.weight_decay = check.in_range("train.weight_decay", 0.0, 10.0, false);
  t.beta1 = check.in_range("train.beta1", 0.0, 1.0, true);
  t.beta2 = check.in_range("train.beta2", 0.0, 1.0, true);
  t.eps = check.in_range("train.eps", 1e-30, 1.0, false);
  t.grad_clip = check.in_range("train.grad_clip", 0.0, 1e9, false);
  t.log_interval = check.positive("train.log_interval");
  t.eval_interval = check.positive("train.eval_interval");
  t.eval_tokens = check.positive("train.eval_tokens");
  t.checkpoint_interval = check.positive("train.checkpoint_interval");
  t.keep_checkpoints = check.positive("train.keep_checkpoints");

  const ModelShape shape{m.d_model, m.n_heads, m.n_layers, d.train_length, 0};
  try {
    config.position = resolve_position(document["position"], "position", shape);
    document["position"] = position_json(config.position);
    resolve_layers(document, shape, config);
    config.position_sampling = resolve_position_sampling(document, config);
    check_position_sampling(config, /*training=*/true);
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }

  if (m.bias) {
    for (const auto& layer : config.layers) {
      if (layer.attention.qk_bias) {
        check.fail("attention.qk_bias", "model.bias = true already gives every projection a bias; Su's RoPE + Q/K "
                                        "bias means model.bias = false with attention.qk_bias = true");
      }
    }
  }
  config.resolved = document;
  return config;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<fs::path> chain;
  json document = load_with_extends(path, chain);
  for (const auto& assignment : overrides) apply_override(document, assignment, path);
  RunConfig config = config_from_json(document, path);
  if (config.name.empty()) {
    config.name = fs::path(path).stem().string();
    config.resolved["name"] = config.name;
  }
  return config;
}

}  // namespace extrap
