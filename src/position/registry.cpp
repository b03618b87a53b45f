#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/json_kind.h"
#include "common/text.h"
#include "position/scheme.h"

namespace extrap {

std::vector<torch::Tensor*> QueryKey::queries() {
  std::vector<torch::Tensor*> all{&q};
  for (auto& pair : far_passes) all.push_back(&pair.q);
  return all;
}

std::vector<torch::Tensor*> QueryKey::tensors() {
  std::vector<torch::Tensor*> all{&q, &k};
  for (auto& pair : far_passes) all.insert(all.end(), {&pair.q, &pair.k});
  return all;
}

Positions Positions::arange(int64_t length, const torch::Device& device) {
  return Positions{torch::arange(length, torch::TensorOptions().dtype(torch::kFloat64).device(device)), true};
}

namespace {
std::vector<SchemeInfo>& registry() {
  static std::vector<SchemeInfo> schemes;  // function-local: safe during static initialisation
  return schemes;
}

// The registered scheme called `name`, or null (callers that only look ahead leave the error to
// resolve_position, which names the key).
const SchemeInfo* lookup_scheme(const nlohmann::json& name) {
  if (!name.is_string()) return nullptr;
  for (const auto& info : registry()) {
    if (info.name == name.get<std::string>()) return &info;
  }
  return nullptr;
}

std::vector<std::string> param_names(const SchemeInfo& info) {
  std::vector<std::string> names;
  for (const auto& p : info.params) names.push_back(p.name);
  return names;
}
}  // namespace

const SchemeParam* SchemeInfo::find_param(const std::string& param) const {
  for (const auto& p : params) {
    if (p.name == param) return &p;
  }
  return nullptr;
}

bool register_scheme(SchemeInfo info) {
  registry().push_back(std::move(info));
  return true;
}

const std::vector<SchemeInfo>& registered_schemes() {
  auto& schemes = registry();
  std::sort(schemes.begin(), schemes.end(), [](const SchemeInfo& a, const SchemeInfo& b) { return a.name < b.name; });
  return schemes;
}

const SchemeInfo& find_scheme(const std::string& name) {
  std::vector<std::string> known;
  for (const auto& info : registered_schemes()) {
    if (info.name == name) return info;
    known.push_back(info.name);
  }
  throw UserError("position.scheme: unknown scheme \"" + name + "\" (registered: " + join_names(known) + ")");
}

nlohmann::json resolve_scheme_params(const SchemeInfo& info, const nlohmann::json& given) {
  nlohmann::json resolved = nlohmann::json::object();
  for (const auto& p : info.params) resolved[p.name] = p.default_value;
  check_known_keys(given, "position", param_names(info));
  for (auto it = given.begin(); it != given.end(); ++it) {
    const SchemeParam& spec = *info.find_param(it.key());
    if (!json_kind_matches(spec.default_value, *it)) {
      throw UserError("position." + it.key() + ": expected " + json_kind_name(spec.default_value) + ", got " +
                      it->dump());
    }
    resolved[it.key()] = *it;
  }
  return resolved;
}

PositionConfig resolve_position(const nlohmann::json& position, const std::string& key, const ModelShape& shape) {
  if (!position.is_object()) throw UserError(key + ": expected an object like {\"scheme\": \"rope\"}");
  if (!position.contains("scheme") || !position["scheme"].is_string()) {
    throw UserError(key + ".scheme: required: a string naming a registered scheme (see `extrap schemes`)");
  }
  PositionConfig config;
  config.scheme = position["scheme"].get<std::string>();
  nlohmann::json params = position;
  params.erase("scheme");
  try {
    const SchemeInfo& info = find_scheme(config.scheme);
    config.params = resolve_scheme_params(info, params);
    if (info.check) info.check(config.params, shape);
  } catch (const UserError& e) {
    // Registry messages start with "position"; re-root them at this key.
    std::string message = e.what();
    if (message.rfind("position", 0) == 0) message = key + message.substr(8);
    throw UserError(message);
  }
  return config;
}

void reject_param(const std::string& key, const std::string& problem) {
  throw UserError("position." + key + ": " + problem);
}

double read_base(const nlohmann::json& params) {
  const double base = param<double>(params, "base");
  if (!(base > 1.0)) reject_param("base", "must be > 1, got " + format_number(base));
  return base;
}

std::shared_ptr<PositionScheme> make_scheme(const std::string& name, const nlohmann::json& params,
                                            const ModelShape& shape) {
  return find_scheme(name).create(params, shape);
}

int64_t scheme_max_length(const PositionConfig& position, const ModelShape& shape) {
  const SchemeInfo& info = find_scheme(position.scheme);
  return info.max_length ? info.max_length(position.params, shape) : 0;
}

LengthUse scheme_length_use(const PositionConfig& position) {
  const SchemeInfo& info = find_scheme(position.scheme);
  return info.length_use ? info.length_use(position.params) : LengthUse::kNone;
}

nlohmann::json overlay_position(const nlohmann::json& previous, const nlohmann::json& overlay, const std::string& key) {
  const std::string old_scheme = previous.value("scheme", std::string(kDefaultScheme));
  const bool switches = overlay.contains("scheme") && overlay["scheme"] != old_scheme;
  if (!switches) {
    nlohmann::json merged = previous;
    for (auto it = overlay.begin(); it != overlay.end(); ++it) merged[it.key()] = *it;
    return merged;
  }
  const SchemeInfo* old_info = lookup_scheme(old_scheme);
  const SchemeInfo* new_info = lookup_scheme(overlay["scheme"]);
  nlohmann::json merged = nlohmann::json::object();
  std::vector<std::string> dropped;
  for (auto it = previous.begin(); it != previous.end(); ++it) {
    if (it.key() == "scheme" || overlay.contains(it.key())) continue;
    const SchemeParam* was = old_info ? old_info->find_param(it.key()) : nullptr;
    const bool kept = new_info && new_info->find_param(it.key()) && !(was && was->inference);
    if (kept) {
      merged[it.key()] = *it;
    } else {
      dropped.push_back(it.key() + " = " + it->dump());
    }
  }
  for (auto it = overlay.begin(); it != overlay.end(); ++it) merged[it.key()] = *it;
  if (!dropped.empty()) {
    spdlog::warn("{}: switching {} -> {} drops {}", key, old_scheme, overlay["scheme"].dump(), join_names(dropped));
  }
  return merged;
}

}  // namespace extrap
