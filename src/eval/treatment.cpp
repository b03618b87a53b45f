#include "eval/treatment.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

// Replaces "$train_length" strings by the training length and "$train_length/N" by its N-th part
// (at least 1). `key` names `value` in errors.
json substitute_train_length(json value, int64_t train_length, const std::string& key) {
  const std::string token = "$train_length";
  if (value.is_string() && value.get<std::string>().rfind(token, 0) == 0) {
    const std::string rest = value.get<std::string>().substr(token.size());
    if (rest.empty()) return train_length;
    const std::string divisor = rest.substr(1);
    if (rest[0] == '/' && !divisor.empty() && divisor.size() <= 9 &&
        divisor.find_first_not_of("0123456789") == std::string::npos && std::stoll(divisor) > 0) {
      return std::max<int64_t>(1, train_length / std::stoll(divisor));
    }
    throw UserError(key + ": \"" + value.get<std::string>() +
                    "\": expected \"$train_length\" or \"$train_length/N\" with a whole N >= 1");
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

void treat(RunConfig& config, const json& overlay, const std::string& key) {
  check_keys(overlay, key, {"position", "attention", "layers", "position_sampling"});
  const ModelShape shape = shape_of(config);
  if (overlay.contains("position")) {
    config.position = treat_position(config.position, overlay["position"], key + ".position", shape);
  }
  if (overlay.contains("attention")) {
    for (auto& layer : config.layers) {
      layer.attention = read_attention(merge_attention(attention_json(layer.attention), overlay["attention"],
                                                       key + ".attention"),
                                       key + ".attention");
    }
  }
  if (overlay.contains("layers")) {
    if (!overlay["layers"].is_array()) throw UserError(key + ".layers: expected an array of layer overlays");
    for (std::size_t e = 0; e < overlay["layers"].size(); ++e) {
      const json& entry = overlay["layers"][e];
      const std::string entry_key = key + ".layers[" + std::to_string(e) + "]";
      if (!entry.is_object() || !entry.contains("layers")) throw UserError(entry_key + ": expected {\"layers\": [...], ...}");
      check_keys(entry, entry_key, {"layers", "position", "attention"});
      const auto selected = select_layers(entry["layers"], config.model.n_layers, entry_key + ".layers");
      if (entry.contains("position")) {
        // The selected layers get one new scheme, derived from the first one's trained scheme.
        const LayerConfig& first = config.layers[selected[0]];
        const PositionConfig& trained = first.scheme_group < 0 ? config.position : config.layer_schemes[first.scheme_group];
        config.layer_schemes.push_back(treat_position(trained, entry["position"], entry_key + ".position", shape));
        for (int64_t l : selected) {
          const LayerConfig& layer = config.layers[l];
          const auto& scheme = layer.scheme_group < 0 ? config.position : config.layer_schemes[layer.scheme_group];
          if (!find_scheme(scheme.scheme).rotary) {
            throw UserError(entry_key + ".position: needs a RoPE-family model, but layer " + std::to_string(l) +
                            " was trained with " + scheme.scheme);
          }
          config.layers[l].scheme_group = int(config.layer_schemes.size()) - 1;
        }
      }
      if (entry.contains("attention")) {
        for (int64_t l : selected) {
          auto& attention = config.layers[l].attention;
          attention = read_attention(merge_attention(attention_json(attention), entry["attention"], entry_key + ".attention"),
                                     entry_key + ".attention");
        }
      }
    }
  }
  if (overlay.contains("position_sampling")) {
    const json& sampling = overlay["position_sampling"];
    if (!sampling.is_object()) throw UserError(key + ".position_sampling: expected an object");
    check_keys(sampling, key + ".position_sampling", {"eval"});
    const std::string eval = sampling["eval"].is_string() ? sampling["eval"].get<std::string>() : "";
    if (eval != "ordinary" && eval != "spread") {
      throw UserError(key + ".position_sampling.eval: expected \"ordinary\" or \"spread\", got " + sampling["eval"].dump());
    }
    config.position_sampling.eval = eval;
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

RunConfig apply_treatment(const RunConfig& trained, const Treatment& treatment) {
  RunConfig config = trained;
  const std::string key = "treatment \"" + treatment.name + "\"";
  treat(config, substitute_train_length(treatment.overlay, trained.data.train_length, key), key);
  return config;
}

}  // namespace extrap
