#include "eval/treatment.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/files.h"
#include "common/json_kind.h"
#include "common/text.h"
#include "config/config.h"
#include "position/scheme_info.h"

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

// Position overlays may set inference-time parameters only, and switch schemes only within a
// family: both keep the trained weights meaningful.
void check_position_overlay(const PositionConfig& trained, const json& overlay, const std::string& key) {
  if (!overlay.is_object()) throw UserError(key + ": expected an object of scheme parameters");
  if (overlay.contains("scheme") && !overlay["scheme"].is_string()) {
    throw UserError(key + ".scheme: expected a scheme name (a string), got " + json_kind_name(overlay["scheme"]));
  }
  const SchemeInfo& was = find_scheme(trained.scheme);
  const std::string scheme = overlay.value("scheme", trained.scheme);
  const SchemeInfo& info = find_scheme(scheme);
  if (scheme != trained.scheme && (was.family.empty() || was.family != info.family)) {
    throw UserError(key + ".scheme: cannot switch a layer trained with " + trained.scheme + " to " + scheme +
                    " at inference (only schemes of one family share trained weights" +
                    (was.family.empty() ? "; " + trained.scheme + " has none" : ": " + was.family) + ")");
  }
  std::vector<std::string> knobs, all;
  for (const auto& p : info.params) {
    all.push_back(p.name);
    if (p.inference) knobs.push_back(p.name);
  }
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const SchemeParam* param = info.find_param(it.key());
    if (it.key() == "scheme" || (param && param->inference)) continue;
    if (!param) {
      throw UserError(key + "." + it.key() + ": not a parameter of " + scheme + ", which this layer " +
                      (scheme == trained.scheme ? "was trained with" : "would switch to") + " (its parameters: " +
                      join_names(all) + ")");
    }
    // A parameter the trained scheme does not have (a switch to xpos sets its scale_base) is free.
    if (scheme != trained.scheme && !was.find_param(it.key())) continue;
    throw UserError(key + "." + it.key() + ": fixed by the trained weights; a treatment may set " + scheme +
                    "'s inference-time parameters only (" + join_names(knobs) + ")");
  }
}

// Attention overlays may change the inference-time settings only, and a trained log-n scale stays.
void check_attention_overlay(const AttentionConfig& trained, const json& overlay, const std::string& key) {
  if (!overlay.is_object()) throw UserError(key + ": expected an object of attention settings");
  check_known_keys(overlay, key, kInferenceAttentionSettings);
  if (trained.logn == LognMode::kTrain && overlay.contains("logn") && overlay["logn"] != "train") {
    throw UserError(key + ".logn: this layer was trained with logn = \"train\", which already scales at inference");
  }
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

// One `layers` entry: the selected layers (chosen by their trained settings) get the entry's
// position and attention laid over their current ones, by the config's own merge and checks.
void treat_layers_entry(RunConfig& config, const RunConfig& trained, const json& entry, const std::string& key) {
  if (!entry.is_object() || !entry.contains("layers")) throw UserError(key + ": expected {\"layers\": [...], ...}");
  check_known_keys(entry, key, {"layers", "position", "attention"});
  const auto selected = treated_layers(trained, entry["layers"], key + ".layers");
  if (entry.contains("position")) {
    // One new scheme for the selected layers, laid over the first one's current scheme.
    const std::string position_key = key + ".position";
    for (int64_t l : selected) check_position_overlay(config.layer_position(l), entry["position"], position_key);
    const json merged = overlay_position(config.layer_position(selected[0]).to_json(), entry["position"], position_key);
    config.layer_schemes.push_back(resolve_position(merged, position_key, config.shape()));
    for (int64_t l : selected) config.layers[l].scheme_group = int(config.layer_schemes.size()) - 1;
  }
  if (entry.contains("attention")) {
    const std::string attention_key = key + ".attention";
    for (int64_t l : selected) {
      AttentionConfig& attention = config.layers[l].attention;
      check_attention_overlay(attention, entry["attention"], attention_key);
      attention = read_attention(merge_attention(attention_json(attention), entry["attention"], attention_key),
                                 attention_key);
    }
  }
}

// The model-wide part of a treatment (position, attention, position_sampling, data) as an overlay on
// the trained run's resolved document, through the config's merge and validation. A treatment's
// attention applies to every layer, so it is laid over each `layers` entry's settings too.
RunConfig treat_model_wide(const RunConfig& trained, const json& overlay, const std::string& key) {
  json model_wide = json::object();
  if (overlay.contains("position")) {
    check_position_overlay(trained.position, overlay["position"], key + ".position");
    model_wide["position"] = overlay["position"];
  }
  if (overlay.contains("attention")) {
    for (const auto& layer : trained.layers) check_attention_overlay(layer.attention, overlay["attention"], key + ".attention");
    model_wide["attention"] = overlay["attention"];
  }
  if (overlay.contains("position_sampling")) {
    if (!overlay["position_sampling"].is_object()) throw UserError(key + ".position_sampling: expected an object");
    check_known_keys(overlay["position_sampling"], key + ".position_sampling", {"eval"});
    model_wide["position_sampling"] = overlay["position_sampling"];
  }
  if (overlay.contains("data")) {  // how the documents of a window are told apart; the dataset stays
    if (!overlay["data"].is_object()) throw UserError(key + ".data: expected an object");
    check_known_keys(overlay["data"], key + ".data", {"mask_documents", "reset_positions"});
    model_wide["data"] = overlay["data"];
  }
  json document = trained.resolved;
  merge_config(document, model_wide, key);
  if (overlay.contains("attention")) {
    for (auto& entry : document["layers"]) {
      if (entry.contains("attention")) merge_config(entry["attention"], overlay["attention"], key);
    }
  }
  return config_from_json(document, key, /*for_training=*/false);
}

void treat(RunConfig& config, const json& overlay, const std::string& key) {
  check_known_keys(overlay, key, {"position", "attention", "layers", "position_sampling", "data", "dynamic"});
  const RunConfig trained = config;
  config = treat_model_wide(trained, overlay, key);
  if (overlay.contains("layers")) {
    if (!overlay["layers"].is_array()) throw UserError(key + ".layers: expected an array of layer overlays");
    for (std::size_t e = 0; e < overlay["layers"].size(); ++e) {
      treat_layers_entry(config, trained, overlay["layers"][e], key + ".layers[" + std::to_string(e) + "]");
    }
  }
}

// Whether some layer's scheme depends on the evaluated length in the way `use` says.
bool some_layer_uses(const RunConfig& config, LengthUse use) {
  for (std::size_t l = 0; l < config.layers.size(); ++l) {
    if (scheme_length_use(config.layer_position(l)) == use) return true;
  }
  return false;
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

RunConfig apply_treatment(const RunConfig& trained, const Treatment& treatment) {
  RunConfig config = trained;
  const std::string key = "treatment \"" + treatment.name + "\"";
  treat(config, substitute_train_length(treatment.overlay, trained.data.train_length, key), key);
  try {
    check_position_sampling(config.position_sampling, config.schemes_in_use(), config.shape(), /*training=*/false);
    check_documents(config.data, config.schemes_in_use());
  } catch (const UserError& e) {
    throw UserError(key + ": " + e.what());
  }
  if (dynamic_step(treatment, config) > 0) {
    if (config.position_sampling.eval != EvalPositions::kOrdinary) {
      throw UserError(key + ".dynamic: the factor follows the token count, which " +
                      enum_name(kEvalPositionNames, config.position_sampling.eval) +
                      " evaluation positions no longer equal (use ordinary positions)");
    }
    if (!some_layer_uses(config, LengthUse::kPerLength) && !some_layer_uses(config, LengthUse::kDynamic)) {
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
    // Schemes meant to follow the position (dynamic NTK) are dynamic unless asked otherwise.
    return some_layer_uses(variant, LengthUse::kDynamic) ? train_length : 0;
  }
  const json value = substitute_train_length(treatment.overlay["dynamic"], train_length, key);
  if (value.is_boolean()) return value.get<bool>() ? train_length : 0;
  if (value.is_number_integer() && value.get<int64_t>() >= 1) return value.get<int64_t>();
  throw UserError(key + ": expected true, false or a step of at least 1 position, got " + value.dump());
}

std::vector<int64_t> context_ends(int64_t length, int64_t train_length, int64_t dynamic_step) {
  std::vector<int64_t> ends;
  for (int64_t end = std::min(length, train_length); dynamic_step > 0 && end < length;
       end = length - end > dynamic_step ? end + dynamic_step : length) {
    ends.push_back(end);
  }
  ends.push_back(length);
  return ends;
}

}  // namespace extrap
