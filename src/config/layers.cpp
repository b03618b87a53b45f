// Attention settings and per-layer overrides (`layers` entries) of a config.
#include <cmath>
#include <optional>

#include "common/error.h"
#include "common/json_kind.h"
#include "config/config.h"
#include "config/fields.h"
#include "config/layers.h"

namespace extrap {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& key, const std::string& problem) { throw UserError(key + ": " + problem); }

json attention_defaults() { return attention_json(AttentionConfig{}); }

}  // namespace

json attention_json(const AttentionConfig& attention) {
  AttentionConfig resolved = attention;
  resolved.window_receptive_field = 0.0;  // already resolved into the window
  return fields::write(resolved);
}

// Reads a fully merged attention object (all keys present, types checked).
AttentionConfig read_attention(const json& a, const std::string& key) {
  const AttentionConfig config = fields::read<AttentionConfig>(a, key);
  if (config.sinks > 0 && config.window == 0 && config.window_receptive_field == 0) {
    fail(key + ".sinks", "sink tokens only make sense with a window (set " + key + ".window)");
  }
  if (config.window > 0 && config.window_receptive_field > 0) {
    fail(key + ".window_receptive_field", "set either window or window_receptive_field, not both");
  }
  if (config.ssmax && config.logn != LognMode::kNone) {
    fail(key + ".ssmax", "Scalable-Softmax scales the logits by log n itself; leave logn at \"none\"");
  }
  if (config.temperature == Temperature::kConstant && config.temperature_scale == 0.0) {
    fail(key + ".temperature_scale", "temperature \"constant\" needs the factor (temperature_scale > 0)");
  }
  return config;
}

// An attention override merged over `base`, with unknown keys and wrong types rejected.
json merge_attention(json base, const json& overlay, const std::string& key) {
  if (!overlay.is_object()) fail(key, "expected an object of attention settings");
  const json defaults = attention_defaults();
  std::vector<std::string> known;
  for (auto it = defaults.begin(); it != defaults.end(); ++it) known.push_back(it.key());
  check_known_keys(overlay, key, known);
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    if (!json_kind_matches(defaults[it.key()], *it)) {
      fail(key + "." + it.key(), std::string("expected ") + json_kind_name(defaults[it.key()]) + ", got " + it->dump());
    }
    base[it.key()] = *it;
  }
  return base;
}

namespace {

// The count of a selection "PREFIX:N" with 1 <= N <= n_layers (N named `letter` in the error);
// nullopt for other selections.
std::optional<int64_t> prefixed_count(const json& selection, const std::string& prefix, const char* letter,
                                      int64_t n_layers, const std::string& key) {
  if (!selection.is_string() || selection.get<std::string>().rfind(prefix, 0) != 0) return std::nullopt;
  const std::string count = selection.get<std::string>().substr(prefix.size());
  const bool whole = !count.empty() && count.size() <= 6 && count.find_first_not_of("0123456789") == std::string::npos;
  const int64_t n = whole ? std::stoll(count) : 0;
  if (n < 1 || n > n_layers) {
    fail(key, "\"" + selection.get<std::string>() + "\": expected \"" + prefix + letter + "\" with 1 <= " + letter +
                  " <= model.n_layers = " + std::to_string(n_layers));
  }
  return n;
}

}  // namespace

// Layer selections: a list of indices (negative ones count from the end), a Python-style slice
// string "a:b" (either bound may be omitted or negative), "middle:F" or "every:K".
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
  } else if (const auto count = prefixed_count(selection, "middle:", "F", n_layers, key)) {
    // Su's HWFA2 placement (Part 14): F layers at floor(k n / (F + 1)), k = 1..F.
    for (int64_t k = 1; k <= *count; ++k) layers.push_back(k * n_layers / (*count + 1));
  } else if (const auto interval = prefixed_count(selection, "every:", "K", n_layers, key)) {
    // Every K-th layer counting from 1 (layers K-1, 2K-1, ...): Llama 4's no_rope_layer_interval,
    // SmolLM3's NoPE every 4th layer.
    for (int64_t i = *interval - 1; i < n_layers; i += *interval) layers.push_back(i);
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

}  // namespace

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
    check_known_keys(entry, key, {"layers", "position", "attention"});
    PositionConfig position{"", json::object()};  // empty scheme: the entry keeps the layers' scheme
    if (entry.contains("position")) {
      position = resolve_position(entry["position"], key + ".position", shape);
      const SchemeInfo& info = find_scheme(position.scheme);
      if (info.hooks & kEmbeddingHook) {
        fail(key + ".position.scheme", position.scheme + " adds an input embedding, which belongs to the whole model; "
                                                          "set it as the model-wide position instead");
      }
      entry["position"] = position.to_json();
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

}  // namespace extrap
