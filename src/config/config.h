#pragma once
// Loading a run configuration: JSON files with `extends`, `--set key=value` overrides, defaults, and
// strict validation (unknown keys, wrong types and impossible values are errors naming the source,
// the dotted key and the value). The structs themselves are in run_config.h.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.h"

namespace extrap {

// The built-in defaults, serialised from the structs of run_config.h: also the schema (every
// accepted key, and its type) for config files.
nlohmann::json default_config();

// Loads `path`, follows `extends` chains (relative to each file), applies `overrides`
// ("model.d_model=256"; the value is parsed as JSON, else taken as a string), fills defaults and
// validates. Errors name the file and the dotted key, or the `--set` argument that caused them.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The one merge of config documents, used by `extends`, `--set` and treatments: objects merge key
// by key, anything else is replaced, and a "position" object is laid over the previous one by the
// scheme-switching rule (overlay_position in position/scheme_info.h). `source` prefixes warnings.
void merge_config(nlohmann::json& base, const nlohmann::json& overlay, const std::string& source);

// Applies one "dotted.key=value" override to a config document (as `train --set` does) through
// merge_config; errors name the argument.
void apply_override(nlohmann::json& document, const std::string& assignment);

// Builds a RunConfig from a document (a config file's merged content, or a run directory's
// config.json): defaults filled, everything validated. Errors start with "<source>: ". A variant
// only ever evaluated (a treatment) passes for_training = false: the schemes then need to take the
// evaluation positions only, not the training ones.
RunConfig config_from_json(const nlohmann::json& document, const std::string& source, bool for_training = true);

// Throws UserError("data.reset_positions: ...") when some layer cannot take positions that restart
// at every document: a two-pass scheme (ReRoPE) merges by token distance, which reset positions
// follow only within a document, so it needs data.mask_documents as well.
void check_documents(const DataConfig& data, const std::vector<PositionConfig>& schemes);

// Attention settings as a complete JSON object, and back (with value checks; errors name `key`).
nlohmann::json attention_json(const AttentionConfig& attention);
AttentionConfig read_attention(const nlohmann::json& complete, const std::string& key);
// `overlay` merged over a complete attention object; unknown keys and wrong types are errors.
nlohmann::json merge_attention(nlohmann::json base, const nlohmann::json& overlay, const std::string& key);

// Layer indices from a list (negative counts from the end), a slice string "a:b", or "middle:F":
// F layers evenly inside the stack, floor(k n / (F + 1)) for k = 1..F (HWFA2's full layers).
std::vector<int64_t> select_layers(const nlohmann::json& selection, int64_t n_layers, const std::string& key);

}  // namespace extrap
