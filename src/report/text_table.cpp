#include "report/text_table.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"

namespace extrap {
namespace {

using nlohmann::json;

// Terminal columns taken by UTF-8 text: one per code point (names such as "logn†", "InvLeaky→RoPE").
std::size_t display_width(const std::string& text) {
  return std::size_t(std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// A config's leaves by dotted path ("position.base"; array elements by index, "layers.0.window").
std::map<std::string, json> config_leaves(const json& config) {
  const json flat = config.flatten();
  std::map<std::string, json> leaves;
  for (const auto& item : flat.items()) {
    std::string path = item.key().empty() ? "" : item.key().substr(1);  // "/position/base"
    std::replace(path.begin(), path.end(), '/', '.');
    leaves.emplace(path, item.value());
  }
  return leaves;
}

std::string leaf_text(const std::map<std::string, json>& leaves, const std::string& path) {
  const auto found = leaves.find(path);
  if (found == leaves.end()) return "unset";
  return found->second.is_string() ? found->second.get<std::string>() : found->second.dump();
}

// The paths whose values are not the same in every one of `configs`, in path order.
std::vector<std::string> differing_paths(const std::vector<std::map<std::string, json>>& configs) {
  std::set<std::string> paths;
  for (const auto& leaves : configs) {
    for (const auto& leaf : leaves) paths.insert(leaf.first);
  }
  std::vector<std::string> differing;
  for (const auto& path : paths) {
    const std::string value = leaf_text(configs[0], path);
    const auto differs = [&](const auto& leaves) { return leaf_text(leaves, path) != value; };
    if (std::any_of(configs.begin(), configs.end(), differs)) differing.push_back(path);
  }
  return differing;
}

constexpr std::size_t kLabelFields = 3;  // differing fields named in a label, at most

}  // namespace

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::string render_rows(const std::vector<std::vector<std::string>>& rows, std::size_t names, TableFormat format) {
  std::ostringstream out;
  if (format == TableFormat::Csv) {
    for (const auto& row : rows) {
      for (std::size_t c = 0; c < row.size(); ++c) out << (c ? "," : "") << csv_field(row[c]);
      out << "\n";
    }
    return out.str();
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], display_width(row[c]));
  }
  const std::string sep = format == TableFormat::Markdown ? " | " : "  ";
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (format == TableFormat::Markdown) out << "| ";
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      const std::string& text = rows[r][c];
      const std::string pad(widths[c] - display_width(text), ' ');
      out << (c ? sep : "") << (c < names ? text + pad : pad + text);
    }
    out << (format == TableFormat::Markdown ? " |\n" : "\n");
    if (r == 0) {
      if (format == TableFormat::Markdown) {
        out << "|";
        for (std::size_t c = 0; c < widths.size(); ++c) {
          const std::string dashes(widths[c] - 1, '-');
          out << (c < names ? " :" + dashes + " |" : " " + dashes + ": |");
        }
        out << "\n";
      } else {
        std::size_t total = 0;
        for (auto w : widths) total += w + sep.size();
        out << std::string(total - sep.size(), '-') << "\n";
      }
    }
  }
  return out.str();
}

std::vector<std::string> run_labels(const std::vector<json>& documents) {
  std::vector<std::string> names;
  for (const auto& document : documents) names.push_back(document.at("run").at("name").get<std::string>());
  std::vector<std::string> labels = names;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    const std::string dir = documents[d].at("run").value("dir", "");
    std::vector<std::map<std::string, json>> configs{config_leaves(documents[d].at("run").at("config"))};  // d's first
    bool dirs_differ = false;
    for (std::size_t e = 0; e < documents.size(); ++e) {
      if (e == d || names[e] != names[d]) continue;
      configs.push_back(config_leaves(documents[e].at("run").at("config")));
      dirs_differ = dirs_differ || documents[e].at("run").value("dir", "") != dir;
    }
    if (configs.size() < 2) continue;
    const std::vector<std::string> differing = differing_paths(configs);
    std::string fields;
    for (std::size_t f = 0; f < std::min(differing.size(), kLabelFields); ++f) {
      fields += (f ? ", " : "") + differing[f] + "=" + leaf_text(configs[0], differing[f]);
    }
    if (differing.size() > kLabelFields) fields += ", ...";
    if (fields.empty() && dirs_differ) fields = dir;
    if (!fields.empty()) labels[d] = names[d] + " (" + fields + ")";
  }
  return labels;
}

TableFormat parse_table_format(const std::string& name) {
  if (name == "table") return TableFormat::Terminal;
  if (name == "markdown") return TableFormat::Markdown;
  if (name == "csv") return TableFormat::Csv;
  throw UserError("--format " + name + ": expected table, markdown or csv");
}

}  // namespace extrap
