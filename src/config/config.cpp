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

void check_against_schema(const json& given, const json& schema, const std::string& prefix, const std::string& source) {
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (key == "position") continue;  // checked against the chosen scheme's parameters
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

json default_config() {
  const TrainConfig t;
  const ModelConfig m;
  return json{
      {"name", ""},
      {"seed", 1234},
      {"model",
       {{"vocab_size", m.vocab_size}, {"d_model", m.d_model}, {"n_layers", m.n_layers}, {"n_heads", m.n_heads},
        {"d_mlp", 0}, {"dropout", m.dropout}, {"bias", m.bias}, {"tie_embeddings", m.tie_embeddings}}},
      {"position", {{"scheme", "rope"}}},
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

  const json& position = document["position"];
  if (!position.is_object()) check.fail("position", "expected an object like {\"scheme\": \"rope\"}");
  if (!position.contains("scheme") || !position["scheme"].is_string()) {
    check.fail("position.scheme", "required: a string naming a registered scheme (see `extrap schemes`)");
  }
  config.position.scheme = position["scheme"].get<std::string>();
  json params = position;
  params.erase("scheme");
  const ModelShape shape{m.d_model, m.n_heads, m.n_layers, d.train_length};
  try {
    const SchemeInfo& info = find_scheme(config.position.scheme);
    config.position.params = resolve_scheme_params(info, params);
    validate_scheme(config.position.scheme, config.position.params, shape);
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }
  json resolved_position = config.position.params;
  resolved_position["scheme"] = config.position.scheme;
  document["position"] = resolved_position;

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
