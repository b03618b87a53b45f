#include "common/error.h"
#include "common/json_kind.h"
#include "position/scheme.h"

namespace extrap {

Positions Positions::arange(int64_t length, const torch::Device& device) {
  return Positions{torch::arange(length, torch::TensorOptions().dtype(torch::kFloat64).device(device)), true};
}

namespace {
std::vector<SchemeInfo>& registry() {
  static std::vector<SchemeInfo> schemes;  // function-local: safe during static initialisation
  return schemes;
}
}  // namespace

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
  std::string known;
  for (const auto& info : registered_schemes()) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw UserError("position.scheme: unknown scheme \"" + name + "\" (registered: " + known + ")");
}

nlohmann::json resolve_scheme_params(const SchemeInfo& info, const nlohmann::json& given) {
  nlohmann::json resolved = nlohmann::json::object();
  for (const auto& p : info.params) resolved[p.name] = p.default_value;
  for (auto it = given.begin(); it != given.end(); ++it) {
    auto spec = std::find_if(info.params.begin(), info.params.end(),
                             [&](const SchemeParam& p) { return p.name == it.key(); });
    if (spec == info.params.end()) {
      std::string known;
      for (const auto& p : info.params) known += (known.empty() ? "" : ", ") + p.name;
      throw UserError("position." + it.key() + ": unknown parameter of scheme " + info.name + " (its parameters: " +
                      (known.empty() ? "none" : known) + ")");
    }
    if (!json_kind_matches(spec->default_value, *it)) {
      throw UserError("position." + it.key() + ": expected " + json_kind_name(spec->default_value) + ", got " +
                      it->dump());
    }
    resolved[it.key()] = *it;
  }
  return resolved;
}

void reject_param(const std::string& key, const std::string& problem) {
  throw UserError("position." + key + ": " + problem);
}

std::shared_ptr<PositionScheme> make_scheme(const std::string& name, const nlohmann::json& params,
                                            const ModelShape& shape) {
  return find_scheme(name).create(params, shape);
}

void validate_scheme(const std::string& name, const nlohmann::json& params, const ModelShape& shape) {
  make_scheme(name, params, shape);
}

int64_t scheme_max_length(const std::string& name, const nlohmann::json& params, const ModelShape& shape) {
  return make_scheme(name, params, shape)->max_length();
}

}  // namespace extrap
