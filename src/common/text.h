#pragma once
// Small text helpers for messages: lists of names, numbers in their shortest exact form, and the
// one "unknown key (known here: ...)" check every JSON reader uses.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

// "a, b, c" (or `none` when empty).
std::string join_names(const std::vector<std::string>& names, const std::string& none = "none");

// The shortest text that reads back as exactly `value` ("0.1", "-1e-07", "512"), for messages.
std::string format_number(double value);

// Throws UserError("<prefix>.<key>: unknown key (known here: ...)") for the first key of `object`
// not in `known`. Keys starting with "_" are comments when `allow_comments` (JSON has no comments).
void check_known_keys(const nlohmann::json& object, const std::string& prefix, const std::vector<std::string>& known,
                      bool allow_comments = false);

// Settings that are enumerations: one table of (value, name) per enum, parsed once where the JSON
// is read, so nothing downstream compares strings.
template <typename Enum>
struct EnumName {
  Enum value;
  const char* name;
};

[[noreturn]] void throw_not_one_of(const std::string& key, const std::string& given, const std::vector<std::string>& names);

// The enum value called `name` in `table`; throws UserError("<key>: \"x\" is not one of a, b, c").
template <typename Enum, std::size_t N>
Enum parse_enum(const EnumName<Enum> (&table)[N], const std::string& name, const std::string& key) {
  std::vector<std::string> names;
  for (const auto& entry : table) {
    if (name == entry.name) return entry.value;
    names.push_back(entry.name);
  }
  throw_not_one_of(key, name, names);
}

template <typename Enum, std::size_t N>
const char* enum_name(const EnumName<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

}  // namespace extrap
