#include "eval/treatment.h"

#include <algorithm>
#include <functional>
#include <set>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

// Reads the digits of `text` (1 to 9 of them, value >= 1); 0 when it is anything else.
int64_t whole_number(const std::string& text) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoll(text);
}

// Replaces "$train_length" strings by the training length, and "$train_length/N",
// "$train_length*M" and "$train_length*M/N" by that multiple (rounded down, at least 1). `key`
// names `value` in errors.
json substitute_train_length(json value, int64_t train_length, const std::string& key) {
  const std::string token = "$train_length";
  if (value.is_string() && value.get<std::string>().rfind(token, 0) == 0) {
    std::string rest = value.get<std::string>().substr(token.size());
    int64_t multiplier = 1, divisor = 1;
    if (!rest.empty() && rest[0] == '*') {
      const auto slash = rest.find('/');
      multiplier = whole_number(rest.substr(1, slash == std::string::npos ? std::string::npos : slash - 1));
      rest = slash == std::string::npos ? "" : rest.substr(slash);
    }
    if (!rest.empty()) divisor = rest[0] == '/' ? whole_number(rest.substr(1)) : 0;
    if (multiplier == 0 || divisor == 0) {
      throw UserError(key + ": \"" + value.get<std::string>() +
                      "\": expected \"$train_length\", \"$train_length/N\", \"$train_length*M\" or "
                      "\"$train_length*M/N\" with whole M, N >= 1");
    }
    return std::max<int64_t>(1, train_length * multiplier / divisor);
  }
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      it.value() = substitute_train_length(it.value(), train_length, key + "." + it.key());
    }
  }
  if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      value[i] = substitute_train_length(value[i], train_length, key + "[" + std::to_string(i) + "]");
    }
  }
  return value;
}

ModelShape shape_of(const RunConfig& config) {
  return {config.model.d_model, config.model.n_heads, config.model.n_layers, config.data.train_length, 0};
}

// A switch of scheme keeps only the parameters both schemes have; trained values that differ from
// their defaults and are dropped (e.g. InvLeaky's leaky_factor when evaluated as plain RoPE, or a
// trained NTK scaling switched to ReRoPE) are worth a line in the log.
void warn_dropped_params(const PositionConfig& trained, const json& kept, const json& overlay, const std::string& key) {
  for (const auto& p : find_scheme(trained.scheme).params) {
    if (kept.contains(p.name) || overlay.contains(p.name)) continue;
    if (trained.params.value(p.name, p.default_value) == p.default_value) continue;
    spdlog::warn("{}: {} -> {} drops the trained {} = {}", key, trained.scheme, kept["scheme"].get<std::string>(),
                 p.name, trained.params[p.name].dump());
  }
}

// `trained` switched or re-parametrised by `overlay`; only RoPE-family schemes on both sides.
PositionConfig treat_position(const PositionConfig& trained, const json& overlay, const std::string& key,
                              const ModelShape& shape) {
  if (!find_scheme(trained.scheme).rotary) {
    throw UserError(key + ": needs a RoPE-family model, but this layer was trained with " + trained.scheme);
  }
  if (!overlay.is_object()) throw UserError(key + ": expected an object of scheme parameters");
  const std::string scheme = overlay.value("scheme", trained.scheme);
  const SchemeInfo& info = find_scheme(scheme);
  if (!info.rotary) throw UserError(key + ".scheme: " + scheme + " is not a RoPE-family scheme");
  json position = json{{"scheme", scheme}};
  for (const auto& p : info.params) {
    if (trained.params.contains(p.name)) position[p.name] = trained.params[p.name];
  }
  if (scheme != trained.scheme) {
    // Inference-time extras of the old scheme (scaling, windows) do not carry over to a new one.
    for (const char* extra : {"scaling", "factor", "window", "leaky_factor"}) position.erase(extra);
    warn_dropped_params(trained, position, overlay, key);
  }
  for (auto it = overlay.begin(); it != overlay.end(); ++it) position[it.key()] = *it;
  return resolve_position(position, key, shape);
}

void check_keys(const json& object, const std::string& key, std::initializer_list<const char*> known) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool ok = false;
    std::string list;
    for (const char* k : known) {
      ok = ok || it.key() == k;
      list += (list.empty() ? "" : ", ") + std::string(k);
    }
    if (!ok) throw UserError(key + "." + it.key() + ": unknown key (known here: " + list + ")");
  }
}

// Attention settings a treatment may change: the others (qk_norm, qk_bias, ...) shape what the
// weights learned, and a trained log-n scale stays as trained.
json treat_attention(const AttentionConfig& trained, const json& overlay, const std::string& key) {
  if (!overlay.is_object()) throw UserError(key + ": expected an object of attention settings");
  check_keys(overlay, key, {"window", "sinks", "logn"});
  if (trained.logn == "train" && overlay.contains("logn") && overlay["logn"] != "train") {
    throw UserError(key + ".logn: this layer was trained with logn = \"train\", which already scales at inference");
  }
  return merge_attention(attention_json(trained), overlay, key);
}

// "full" selects the layers trained with full attention (HWFA2's switch to ReRoPE); anything else
// is a layer selection as in a config's `layers`.
std::vector<int64_t> treated_layers(const RunConfig& config, const json& selection, const std::string& key) {
  if (selection != "full") return select_layers(selection, config.model.n_layers, key);
  std::vector<int64_t> full;
  for (std::size_t l = 0; l < config.layers.size(); ++l) {
    if (config.layers[l].attention.window == 0) full.push_back(int64_t(l));
  }
  if (full.empty()) throw UserError(key + ": \"full\" selects no layer: every layer was trained with a window");
  return full;
}

// One `layers` entry: a new scheme and/or attention settings for the layers it selects (chosen by
// their trained settings).
void treat_layers_entry(RunConfig& config, const RunConfig& trained, const json& entry, const std::string& key,
                        const ModelShape& shape) {
  if (!entry.is_object() || !entry.contains("layers")) throw UserError(key + ": expected {\"layers\": [...], ...}");
  check_keys(entry, key, {"layers", "position", "attention"});
  const auto selected = treated_layers(trained, entry["layers"], key + ".layers");
  if (entry.contains("position")) {
    // The selected layers get one new scheme, derived from the first one's current scheme.
    const PositionConfig base = config.layer_position(selected[0]);
    const PositionConfig treated = treat_position(base, entry["position"], key + ".position", shape);
    for (int64_t l : selected) {
      const std::string& scheme = config.layer_position(l).scheme;
      if (!find_scheme(scheme).rotary) {
        throw UserError(key + ".position: needs a RoPE-family model, but layer " + std::to_string(l) +
                        " was trained with " + scheme);
      }
    }
    config.layer_schemes.push_back(treated);
    for (int64_t l : selected) config.layers[l].scheme_group = int(config.layer_schemes.size()) - 1;
  }
  if (entry.contains("attention")) {
    for (int64_t l : selected) {
      auto& attention = config.layers[l].attention;
      attention = read_attention(treat_attention(attention, entry["attention"], key + ".attention"), key + ".attention");
    }
  }
}

std::string treated_eval_positions(const json& sampling, const std::string& key) {
  if (!sampling.is_object()) throw UserError(key + ": expected an object");
  check_keys(sampling, key, {"eval"});
  const std::string eval = sampling["eval"].is_string() ? sampling["eval"].get<std::string>() : "";
  if (eval != "ordinary" && eval != "spread") {
    throw UserError(key + ".eval: expected \"ordinary\" or \"spread\", got " + sampling["eval"].dump());
  }
  return eval;
}

void treat(RunConfig& config, const json& overlay, const std::string& key) {
  check_keys(overlay, key, {"position", "attention", "layers", "position_sampling", "dynamic"});
  const RunConfig trained = config;
  const ModelShape shape = shape_of(config);
  if (overlay.contains("position")) {
    config.position = treat_position(config.position, overlay["position"], key + ".position", shape);
  }
  if (overlay.contains("attention")) {
    for (auto& layer : config.layers) {
      layer.attention = read_attention(treat_attention(layer.attention, overlay["attention"], key + ".attention"),
                                       key + ".attention");
    }
  }
  if (overlay.contains("layers")) {
    if (!overlay["layers"].is_array()) throw UserError(key + ".layers: expected an array of layer overlays");
    for (std::size_t e = 0; e < overlay["layers"].size(); ++e) {
      treat_layers_entry(config, trained, overlay["layers"][e], key + ".layers[" + std::to_string(e) + "]", shape);
    }
  }
  if (overlay.contains("position_sampling")) {
    config.position_sampling.eval = treated_eval_positions(overlay["position_sampling"], key + ".position_sampling");
  }
}

}  // namespace

Treatment baseline_treatment() { return {"baseline", nlohmann::json::object()}; }

std::vector<Treatment> load_treatments(const std::vector<std::string>& files) {
  std::vector<Treatment> treatments;
  std::set<std::string> names;
  for (const auto& file : files) {
    if (!fs::is_regular_file(file)) throw UserError(file + ": treatments file not found");
    const json document = read_json_file(file);
    const json entries = document.is_object() && document.contains("treatments") ? document["treatments"]
                                                                                   : json::array({document});
    if (!entries.is_array()) throw UserError(file + ": treatments: expected an array of treatments");
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::string key = file + ": treatments[" + std::to_string(i) + "]";
      const json& entry = entries[i];
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
          entry["name"].get<std::string>().empty()) {
        throw UserError(key + ": each treatment needs a \"name\" (a non-empty string)");
      }
      Treatment treatment{entry["name"].get<std::string>(), json::object()};
      for (auto it = entry.begin(); it != entry.end(); ++it) {
        if (it.key() != "name" && it.key().rfind('_', 0) != 0) treatment.overlay[it.key()] = *it;  // "_comment"s dropped
      }
      if (treatment.name == baseline_treatment().name) {
        throw UserError(key + ": the name \"" + treatment.name + "\" is reserved for the untreated model");
      }
      if (!names.insert(treatment.name).second) throw UserError(key + ": duplicate treatment name \"" + treatment.name + "\"");
      treatments.push_back(treatment);
    }
  }
  return treatments;
}

std::vector<Treatment> select_treatments(const std::vector<Treatment>& treatments, const std::vector<std::string>& names) {
  std::vector<Treatment> selected;
  for (const auto& name : names) {
    const auto found = std::find_if(treatments.begin(), treatments.end(), [&](const Treatment& t) { return t.name == name; });
    if (found == treatments.end()) {
      std::string known;
      for (const auto& t : treatments) known += (known.empty() ? "" : ", ") + t.name;
      throw UserError("--only: no treatment named \"" + name + "\" (available: " + known + ")");
    }
    if (std::any_of(selected.begin(), selected.end(), [&](const Treatment& t) { return t.name == name; })) {
      throw UserError("--only: \"" + name + "\" is named twice");
    }
    selected.push_back(*found);
  }
  return selected;
}

namespace {

// Whether some layer's scheme has a `scaling` parameter for which `test` holds.
bool uses_scaling(const RunConfig& config, const std::function<bool(const json& scaling, double factor)>& test) {
  for (std::size_t l = 0; l < config.layers.size(); ++l) {
    const PositionConfig& p = config.layer_position(l);
    if (p.params.contains("scaling") && test(p.params["scaling"], p.params.value("factor", 0.0))) return true;
  }
  return false;
}

}  // namespace

RunConfig apply_treatment(const RunConfig& trained, const Treatment& treatment) {
  RunConfig config = trained;
  const std::string key = "treatment \"" + treatment.name + "\"";
  treat(config, substitute_train_length(treatment.overlay, trained.data.train_length, key), key);
  try {
    check_position_sampling(config, /*training=*/false);
  } catch (const UserError& e) {
    throw UserError(key + ": " + e.what());
  }
  if (dynamic_step(treatment, config) > 0) {
    if (config.position_sampling.eval != "ordinary") {
      throw UserError(key + ".dynamic: the factor follows the token count, which " + config.position_sampling.eval +
                      " evaluation positions no longer equal (use ordinary positions)");
    }
    if (!uses_scaling(config, [](const json& scaling, double factor) { return scaling != "none" && factor == 0.0; })) {
      spdlog::warn("{}.dynamic: no layer has a scaling whose factor follows the length, so every piece computes "
                   "the same model (the numbers equal the static ones, at several times the cost)", key);
    }
  }
  return config;
}

int64_t dynamic_step(const Treatment& treatment, const RunConfig& variant) {
  const std::string key = "treatment \"" + treatment.name + "\".dynamic";
  const int64_t train_length = variant.data.train_length;
  if (!treatment.overlay.contains("dynamic")) {
    // dynamic_ntk is dynamic unless asked otherwise; every other scaling is static by default.
    const bool dynamic_ntk = uses_scaling(variant, [](const json& scaling, double) { return scaling == "dynamic_ntk"; });
    return dynamic_ntk ? train_length : 0;
  }
  const json value = substitute_train_length(treatment.overlay["dynamic"], train_length, key);
  if (value.is_boolean()) return value.get<bool>() ? train_length : 0;
  if (value.is_number_integer() && value.get<int64_t>() >= 1) return value.get<int64_t>();
  throw UserError(key + ": expected true, false or a step of at least 1 position, got " + value.dump());
}

}  // namespace extrap
