#include "common/text.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"

namespace extrap {

std::string join_names(const std::vector<std::string>& names, const std::string& none) {
  if (names.empty()) return none;
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

std::string format_number(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

void check_known_keys(const nlohmann::json& object, const std::string& prefix, const std::vector<std::string>& known,
                      bool allow_comments) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (allow_comments && it.key().rfind('_', 0) == 0) continue;
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    throw UserError(key + ": unknown key (known here: " + join_names(known) + ")");
  }
}

void throw_not_one_of(const std::string& key, const std::string& given, const std::vector<std::string>& names) {
  throw UserError(key + ": \"" + given + "\" is not one of " + join_names(names));
}

}  // namespace extrap
