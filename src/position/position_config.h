#pragma once
// A position scheme as configured: its registered name and its parameters.
#include <string>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kDefaultScheme = "rope";

struct PositionConfig {
  std::string scheme = kDefaultScheme;
  nlohmann::json params = nlohmann::json::object();  // resolved: every parameter, defaults filled in
  // {"scheme": name, ...params}, as config files write it.
  nlohmann::json to_json() const {
    nlohmann::json object = params;
    object["scheme"] = scheme;
    return object;
  }
};

}  // namespace extrap
