#include "report/results.h"

#include <algorithm>
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

const json* find_row(const json& document, int64_t length, const std::string& protocol) {
  for (const auto& entry : document.at("results")) {
    if (entry.at("length").get<int64_t>() == length && entry.at("protocol") == protocol) return &entry;
  }
  return nullptr;
}

// The part of a row a report cell shows: the row itself, or one of its sub-objects (`nullptr`
// when the row has no such part or it scored nothing).
const json* row_part(const json& entry, const std::string& part) {
  if (part == "window") return &entry;
  const std::string key = part == "beyond" ? "beyond_train" : part;
  if (!entry.contains(key) || entry.at(key).value("tokens", int64_t(0)) == 0) return nullptr;
  return &entry.at(key);
}

std::string cell(const json* entry, const std::string& metric, const std::string& part) {
  if (!entry) return "";
  if (entry->at("status") != "ok") return "n/a";
  const bool beyond = metric == "beyond_ppl";
  const json* source = row_part(*entry, beyond ? "beyond" : part);
  if (!source) return "-";
  const std::string field = beyond ? "ppl" : metric;
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
  for (const char* part : {"natural", "copy"}) {
    if (entry.contains(part) && entry[part].value("tokens", int64_t(0)) > 0) {
      out << " | " << part << " acc " << fixed(100.0 * entry[part]["accuracy"].get<double>(), 2) << "%";
    }
  }
  if (entry.contains("beyond_train") && entry["beyond_train"].contains("ppl")) {
    out << " | beyond-train ppl " << fixed(entry["beyond_train"]["ppl"], 3);
  }
  out << " | " << entry["tokens"].get<int64_t>() << " tokens in " << fixed(entry["seconds"], 1) << " s ("
      << fixed(entry["tokens_per_s"], 0) << " tok/s)";
  return out.str();
}

std::string describe_protocol(const json& protocol) {
  const std::string name = protocol.at("name").get<std::string>();
  auto number = [&](const char* key) { return std::to_string(protocol.value(key, int64_t(0))); };
  std::string text = name + ": ";
  if (name == "nonoverlap") {
    text += number("tokens_scored") + " targets at every length";
  } else if (name == "sliding") {
    const int64_t stride = protocol.value("stride", int64_t(0));
    text += "stride " + (stride > 0 ? std::to_string(stride) : std::string("length/2")) + ", targets L-stride .. " +
            std::to_string(protocol.value("range_tokens", int64_t(0)) - 1) + " at length L";
  } else if (name == "suffix") {
    text += "the same last " + number("suffix_targets") + " targets of " + number("samples") + " " +
            (protocol.value("source", "") == "stream" ? "stream chunks" : "documents") + " (" +
            number("tokens_scored") + " targets) at every length";
  } else if (name == "repeated") {
    text += "a natural segment of ceil(L/2) tokens and its copy, at least " + number("max_tokens") +
            " targets at length L";
  } else {
    text += protocol.dump();
  }
  return text;
}

json upgrade_results(json document) {
  if (!document.is_object() || document.value("schema", "") != kResultsSchemaV1) return document;
  if (!document.contains("protocol") || !document["protocol"].is_object()) return document;
  json protocol = document["protocol"];
  protocol.erase("train_length");  // the run's config has it
  const json name = protocol.value("name", json("nonoverlap"));
  document.erase("protocol");
  document["protocols"] = json::array({protocol});
  if (document.contains("results") && document["results"].is_array()) {
    for (auto& entry : document["results"]) {
      if (entry.is_object()) entry["protocol"] = name;
    }
  }
  document["schema"] = kResultsSchema;
  document["upgraded_from"] = kResultsSchemaV1;
  return document;
}

json load_results(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "results" / "eval.json" : path;
  if (!fs::exists(file)) {
    throw UserError(file.string() + ": no results (run `extrap eval --run " + path.string() + "` first)");
  }
  json document = upgrade_results(read_json_file(file));
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
    throw UserError(source + ": schema is " + document["schema"].dump() + ", expected " + kResultsSchema +
                    (document["schema"] == kResultsSchemaV1 ? " (extrap report reads the old schema from files)" : ""));
  }
  for (const char* key : {"tool", "run", "data"}) require(document, key, T::object, "");
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
  require(document, "protocols", T::array, "");
  if (document["protocols"].empty()) throw UserError(source + ": field protocols is empty");
  std::set<std::string> protocols;
  for (const auto& protocol : document["protocols"]) {
    require(protocol, "name", T::string, "protocols[].");
    if (!protocols.insert(protocol["name"].get<std::string>()).second) {
      throw UserError(source + ": protocol " + protocol["name"].get<std::string>() + " is listed twice");
    }
  }
  require(document, "results", T::array, "");
  for (const auto& entry : document["results"]) {
    require(entry, "length", T::number_integer, "results[].");
    require(entry, "protocol", T::string, "results[].");
    if (!protocols.count(entry["protocol"].get<std::string>())) {
      throw UserError(source + ": results[].protocol " + entry["protocol"].dump() + " is not in protocols[]");
    }
    require(entry, "status", T::string, "results[].");
    if (entry["status"] != "ok") {
      require(entry, "error", T::string, "results[].");
      continue;
    }
    for (const char* key : {"nll", "ppl", "bits_per_byte", "accuracy", "seconds", "tokens_per_s"}) {
      require(entry, key, T::number_float, "results[].");
    }
    for (const char* key : {"tokens", "windows"}) require(entry, key, T::number_integer, "results[].");
    if (entry["protocol"] == "sliding") {
      for (const char* key : {"stride", "first_scored_target"}) require(entry, key, T::number_integer, "results[].");
    }
    if (entry["protocol"] == "repeated") {
      require(entry, "copy_offset", T::number_integer, "results[].");
      for (const char* part : {"natural", "copy"}) {
        require(entry, part, T::object, "results[].");
        require(entry[part], "tokens", T::number_integer, std::string("results[].") + part + ".");
      }
    }
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

std::string render_report(const std::vector<json>& documents, const std::string& metric, TableFormat format,
                          const std::string& part) {
  static const std::set<std::string> metrics{"ppl", "bpb", "nll", "acc", "beyond_ppl"};
  static const std::set<std::string> parts{"window", "natural", "copy", "beyond"};
  if (!metrics.count(metric)) throw UserError("--metric " + metric + ": expected ppl, bpb, nll, acc or beyond_ppl");
  if (!parts.count(part)) throw UserError("--part " + part + ": expected window, natural, copy or beyond");
  // Columns: every (length, protocol) with a row in some input; lengths ascending, protocols in
  // the order they first appear.
  std::set<int64_t> lengths;
  std::vector<std::string> protocols;
  for (const auto& document : documents) {
    for (const auto& entry : document.at("results")) {
      lengths.insert(entry.at("length").get<int64_t>());
      const std::string protocol = entry.at("protocol").get<std::string>();
      if (std::find(protocols.begin(), protocols.end(), protocol) == protocols.end()) protocols.push_back(protocol);
    }
  }
  std::vector<std::pair<int64_t, std::string>> columns;
  for (int64_t length : lengths) {
    for (const auto& protocol : protocols) {
      const bool present = std::any_of(documents.begin(), documents.end(),
                                       [&](const json& document) { return find_row(document, length, protocol); });
      if (present) columns.emplace_back(length, protocol);
    }
  }
  const bool several = protocols.size() > 1;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header{"run", "scheme", "train"};
  for (const auto& [length, protocol] : columns) header.push_back(std::to_string(length) + (several ? " " + protocol : ""));
  rows.push_back(header);
  std::vector<std::string> notes;
  for (const auto& document : documents) {
    const json& config = document.at("run").at("config");
    std::vector<std::string> row{document.at("run").at("name").get<std::string>(),
                                 config.at("position").at("scheme").get<std::string>(),
                                 std::to_string(config.at("data").at("train_length").get<int64_t>())};
    for (const auto& [length, protocol] : columns) {
      const json* entry = find_row(document, length, protocol);
      row.push_back(cell(entry, metric, part));
      if (entry && entry->at("status") != "ok") {
        notes.push_back(row[0] + " @ " + std::to_string(length) + (several ? " " + protocol : "") + ": " +
                        entry->at("error").get<std::string>());
      }
    }
    rows.push_back(row);
  }
  std::string table = render_rows(rows, format);
  if (format != TableFormat::Csv) {
    std::ostringstream out;
    out << table;
    const json& first = documents.front();
    out << "\n" << metric << (part != "window" && metric != "beyond_ppl" ? " (" + part + " part)" : "") << " on "
        << first.at("data").at("split").get<std::string>() << " split\n";
    for (const auto& protocol : first.at("protocols")) out << "protocol " << describe_protocol(protocol) << "\n";
    for (const auto& note : notes) out << "n/a: " << note << "\n";
    // Numbers are comparable only on the same tokens: say so when the inputs differ.
    for (const auto& document : documents) {
      bool same = document.at("data").at("checksum") == first.at("data").at("checksum") &&
                  document.at("data").at("split") == first.at("data").at("split");
      for (const auto& protocol : document.at("protocols")) {
        for (const auto& reference : first.at("protocols")) {
          if (reference.at("name") == protocol.at("name") && reference != protocol) same = false;
        }
      }
      if (!same) {
        out << "warning: " << document.at("run").at("name").get<std::string>()
            << " was evaluated on other data or with other protocol parameters than "
            << first.at("run").at("name").get<std::string>() << "; its numbers are not comparable\n";
      }
    }
    table = out.str();
  }
  return table;
}

}  // namespace extrap
