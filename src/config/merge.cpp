// Config documents from files: `extends` chains, `--set` overrides, and the one merge they share.
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "config/config.h"
#include "position/scheme_info.h"

namespace extrap {
namespace {

using nlohmann::json;

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
  merge_config(merged, document, path.string());
  return merged;
}

// The error config_from_json reports for `document`, without its source prefix; empty when valid.
std::string validation_error(const json& document) {
  try {
    config_from_json(document, "");
  } catch (const UserError& e) {
    return std::string(e.what()).substr(2);  // drop the empty source's ": "
  }
  return "";
}

}  // namespace

void merge_config(json& base, const json& overlay, const std::string& source) {
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    json& target = base[it.key()];
    if (it.key() == "position" && target.is_object() && it->is_object()) {
      target = overlay_position(target, *it, source + ": position");
    } else if (it->is_object() && target.is_object()) {
      merge_config(target, *it, source);
    } else {
      target = *it;
    }
  }
}

void apply_override(json& document, const std::string& assignment) {
  const std::string source = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw UserError(source + ": expected key=value, e.g. model.d_model=256");
  const std::string key = assignment.substr(0, eq);
  json value;
  try {
    value = json::parse(assignment.substr(eq + 1));
  } catch (const json::parse_error&) {
    value = assignment.substr(eq + 1);  // bare words are strings: --set position.scheme=alibi
  }
  std::vector<std::string> path;
  std::stringstream parts(key);
  for (std::string part; std::getline(parts, part, '.');) {
    if (part.empty()) throw UserError(source + ": empty key component in \"" + key + "\"");
    path.push_back(part);
  }
  // {"a": {"b": value}} for "a.b=value", merged like any other overlay.
  json overlay = value;
  for (auto part = path.rbegin(); part != path.rend(); ++part) overlay = json{{*part, overlay}};
  const json* node = &document;
  for (std::size_t i = 0; i + 1 < path.size() && node->contains(path[i]); ++i) {
    node = &(*node)[path[i]];
    if (!node->is_object()) throw UserError(source + ": " + path[i] + " is not an object");
  }
  merge_config(document, overlay, source);
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<fs::path> chain;
  const json from_files = load_with_extends(path, chain);
  json document = from_files;
  for (const auto& assignment : overrides) apply_override(document, assignment);
  RunConfig config;
  try {
    config = config_from_json(document, "");
  } catch (const UserError& e) {
    // Name the first --set after which the document reports this error, or else the file.
    const std::string error = std::string(e.what()).substr(2);  // without the empty source's ": "
    std::string source = path;
    json partial = from_files;
    if (validation_error(partial) != error) {
      for (const auto& assignment : overrides) {
        apply_override(partial, assignment);
        if (validation_error(partial) == error) {
          source = "--set " + assignment;
          break;
        }
      }
    }
    throw UserError(source + ": " + error);
  }
  if (config.name.empty()) {
    config.name = fs::path(path).stem().string();
    config.resolved["name"] = config.name;
  }
  return config;
}

}  // namespace extrap
