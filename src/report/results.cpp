#include "report/results.h"

#include <cstdio>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

const json* find_length(const json& document, int64_t length) {
  for (const auto& entry : document.at("results")) {
    if (entry.at("length").get<int64_t>() == length) return &entry;
  }
  return nullptr;
}

std::string cell(const json* entry, const std::string& metric) {
  if (!entry) return "";
  if (entry->at("status") != "ok") return "n/a";
  const json* source = entry;
  std::string field = metric;
  if (metric == "beyond_ppl") {
    if (!entry->contains("beyond_train")) return "-";
    source = &entry->at("beyond_train");
    field = "ppl";
  }
  if (field == "acc") return fixed(100.0 * source->at("accuracy").get<double>(), 2) + "%";
  if (field == "ppl") return fixed(source->at("ppl").get<double>(), 2);
  if (field == "bpb") return fixed(source->at("bits_per_byte").get<double>(), 3);
  return fixed(source->at("nll").get<double>(), 4);
}

std::string render_rows(const std::vector<std::vector<std::string>>& rows, TableFormat format) {
  std::ostringstream out;
  if (format == TableFormat::Csv) {
    for (const auto& row : rows) {
      for (std::size_t c = 0; c < row.size(); ++c) out << (c ? "," : "") << row[c];
      out << "\n";
    }
    return out.str();
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  const std::string sep = format == TableFormat::Markdown ? " | " : "  ";
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (format == TableFormat::Markdown) out << "| ";
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      const std::string& text = rows[r][c];
      const std::string pad(widths[c] - text.size(), ' ');
      out << (c ? sep : "") << (c < 2 ? text + pad : pad + text);  // names left, numbers right
    }
    out << (format == TableFormat::Markdown ? " |\n" : "\n");
    if (r == 0) {
      if (format == TableFormat::Markdown) {
        out << "|";
        for (std::size_t c = 0; c < widths.size(); ++c) out << (c < 2 ? " :" : " ") << std::string(widths[c], '-') << (c < 2 ? " |" : ": |");
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

}  // namespace

std::string describe_result(const json& entry) {
  if (entry.at("status") != "ok") return entry.value("error", "failed");
  std::ostringstream out;
  out << "ppl " << fixed(entry["ppl"], 3) << " | bpb " << fixed(entry["bits_per_byte"], 4) << " | acc "
      << fixed(100.0 * entry["accuracy"].get<double>(), 2) << "%";
  if (entry.contains("beyond_train")) out << " | beyond-train ppl " << fixed(entry["beyond_train"]["ppl"], 3);
  out << " | " << entry["tokens"].get<int64_t>() << " tokens in " << fixed(entry["seconds"], 1) << " s ("
      << fixed(entry["tokens_per_s"], 0) << " tok/s)";
  return out.str();
}

json load_results(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "results" / "eval.json" : path;
  if (!fs::exists(file)) {
    throw UserError(file.string() + ": no results (run `extrap eval --run " + path.string() + "` first)");
  }
  json document = read_json_file(file);
  validate_results(document, file.string());
  return document;
}

void validate_results(const json& document, const std::string& source) {
  auto require = [&](const json& object, const std::string& key, json::value_t type, const std::string& where) {
    if (!object.is_object() || !object.contains(key)) throw UserError(source + ": missing field " + where + key);
    const json& value = object.at(key);
    const bool ok = type == json::value_t::number_float ? value.is_number()
                    : type == json::value_t::number_integer ? value.is_number_integer()
                                                            : value.type() == type;
    if (!ok) throw UserError(source + ": field " + where + key + " has the wrong type");
  };
  using T = json::value_t;
  require(document, "schema", T::string, "");
  if (document["schema"] != kResultsSchema) {
    throw UserError(source + ": schema is " + document["schema"].dump() + ", expected " + kResultsSchema);
  }
  for (const char* key : {"tool", "run", "data", "protocol"}) require(document, key, T::object, "");
  require(document, "created", T::string, "");
  require(document["tool"], "version", T::string, "tool.");
  require(document["tool"], "git_commit", T::string, "tool.");
  require(document["run"], "name", T::string, "run.");
  require(document["run"], "checkpoint_step", T::number_integer, "run.");
  require(document["run"], "config", T::object, "run.");
  require(document["run"]["config"], "position", T::object, "run.config.");
  require(document["run"]["config"]["position"], "scheme", T::string, "run.config.position.");
  require(document["run"]["config"], "data", T::object, "run.config.");
  require(document["run"]["config"]["data"], "train_length", T::number_integer, "run.config.data.");
  require(document["data"], "checksum", T::string, "data.");
  require(document["data"], "split", T::string, "data.");
  require(document["protocol"], "name", T::string, "protocol.");
  require(document["protocol"], "tokens_scored", T::number_integer, "protocol.");
  require(document, "results", T::array, "");
  for (const auto& entry : document["results"]) {
    require(entry, "length", T::number_integer, "results[].");
    require(entry, "status", T::string, "results[].");
    if (entry["status"] != "ok") {
      require(entry, "error", T::string, "results[].");
      continue;
    }
    for (const char* key : {"nll", "ppl", "bits_per_byte", "accuracy", "seconds", "tokens_per_s"}) {
      require(entry, key, T::number_float, "results[].");
    }
    for (const char* key : {"tokens", "windows"}) require(entry, key, T::number_integer, "results[].");
    require(entry, "position_buckets", T::array, "results[].");
    for (const auto& bucket : entry["position_buckets"]) {
      require(bucket, "begin", T::number_integer, "results[].position_buckets[].");
      require(bucket, "end", T::number_integer, "results[].position_buckets[].");
      require(bucket, "tokens", T::number_integer, "results[].position_buckets[].");
    }
  }
}

TableFormat parse_table_format(const std::string& name) {
  if (name == "table") return TableFormat::Terminal;
  if (name == "markdown") return TableFormat::Markdown;
  if (name == "csv") return TableFormat::Csv;
  throw UserError("--format " + name + ": expected table, markdown or csv");
}

std::string render_report(const std::vector<json>& documents, const std::string& metric, TableFormat format) {
  static const std::set<std::string> metrics{"ppl", "bpb", "nll", "acc", "beyond_ppl"};
  if (!metrics.count(metric)) throw UserError("--metric " + metric + ": expected ppl, bpb, nll, acc or beyond_ppl");
  std::set<int64_t> lengths;
  for (const auto& document : documents) {
    for (const auto& entry : document.at("results")) lengths.insert(entry.at("length").get<int64_t>());
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header{"run", "scheme", "train"};
  for (int64_t length : lengths) header.push_back(std::to_string(length));
  rows.push_back(header);
  std::vector<std::string> notes;
  for (const auto& document : documents) {
    const json& config = document.at("run").at("config");
    std::vector<std::string> row{document.at("run").at("name").get<std::string>(),
                                 config.at("position").at("scheme").get<std::string>(),
                                 std::to_string(config.at("data").at("train_length").get<int64_t>())};
    for (int64_t length : lengths) {
      const json* entry = find_length(document, length);
      row.push_back(cell(entry, metric));
      if (entry && entry->at("status") != "ok") notes.push_back(row[0] + " @ " + std::to_string(length) + ": " + entry->at("error").get<std::string>());
    }
    rows.push_back(row);
  }
  std::string table = render_rows(rows, format);
  if (format != TableFormat::Csv) {
    std::ostringstream out;
    out << table;
    const json& protocol = documents.front().at("protocol");
    out << "\n" << metric << " on " << documents.front().at("data").at("split").get<std::string>() << " split, protocol "
        << protocol.at("name").get<std::string>() << ", " << protocol.at("tokens_scored").get<int64_t>()
        << " tokens scored at every length";
    out << "\n";
    for (const auto& note : notes) out << "n/a: " << note << "\n";
    // Numbers are comparable only on the same tokens: say so when the inputs differ.
    for (const auto& document : documents) {
      const bool same = document.at("data").at("checksum") == documents.front().at("data").at("checksum") &&
                        document.at("data").at("split") == documents.front().at("data").at("split") &&
                        document.at("protocol").at("name") == documents.front().at("protocol").at("name") &&
                        document.at("protocol").at("tokens_scored") ==
                            documents.front().at("protocol").at("tokens_scored");
      if (!same) {
        out << "warning: " << document.at("run").at("name").get<std::string>()
            << " was evaluated on other data or with another protocol than "
            << documents.front().at("run").at("name").get<std::string>() << "; its numbers are not comparable\n";
      }
    }
    table = out.str();
  }
  return table;
}

}  // namespace extrap
