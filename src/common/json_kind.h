#pragma once
#include <nlohmann/json.hpp>

namespace extrap {

// Config values must have the JSON type of their default; an integer is accepted where a
// (floating-point) number is expected, nothing else converts.
inline bool json_kind_matches(const nlohmann::json& expected, const nlohmann::json& given) {
  if (expected.is_number_float()) return given.is_number();
  if (expected.is_number_integer()) return given.is_number_integer();
  return expected.type() == given.type();
}

inline const char* json_kind_name(const nlohmann::json& value) {
  if (value.is_number_float()) return "a number";
  if (value.is_number()) return "an integer";
  if (value.is_boolean()) return "a boolean";
  if (value.is_string()) return "a string";
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  return "null";
}

}  // namespace extrap
