#include "report/results.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <tuple>

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

const std::string kBaseline = kBaselineTreatment;

std::string schema_of(const json& document) {
  return document.is_object() && document.contains("schema") && document["schema"].is_string()
             ? document["schema"].get<std::string>()
             : "";
}

// The row of `treatment` for (length, protocol), or nullptr.
const json* find_row(const json& document, const std::string& treatment, int64_t length, const std::string& protocol) {
  for (const auto& entry : document.at("results")) {
    if (entry.at("length").get<int64_t>() == length && entry.at("protocol") == protocol &&
        entry.at("treatment") == treatment) {
      return &entry;
    }
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

// Terminal columns taken by UTF-8 text: one per code point (names such as "logn†", "InvLeaky→RoPE").
std::size_t display_width(const std::string& text) {
  return std::size_t(std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The first `names` columns are left-aligned, the others (numbers) right-aligned.
// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
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

// One line of a report: a document under one of its treatments.
struct Line {
  const json* document;
  std::string treatment;
  std::string run() const { return document->at("run").at("name").get<std::string>(); }
  // "rope" for the untreated model, "rope / PI" for a treatment (in notes).
  std::string name() const { return treatment == kBaseline ? run() : run() + " / " + treatment; }
  std::string label(const std::string& column) const {
    const json& config = document->at("run").at("config");
    if (column == "run") return run();
    if (column == "scheme") return config.at("position").at("scheme").get<std::string>();
    if (column == "train") return std::to_string(config.at("data").at("train_length").get<int64_t>());
    return treatment;
  }
};

// One column of numbers: the (length, protocol) row of each line, and the part of it shown.
struct Column {
  int64_t length;
  std::string protocol, part, label;
};

std::vector<Column> report_columns(const std::vector<json>& documents, const ReportOptions& options) {
  // Lengths ascending; protocols in the order they first appear.
  std::set<int64_t> lengths;
  std::vector<std::string> protocols;
  for (const auto& document : documents) {
    for (const auto& entry : document.at("results")) {
      lengths.insert(entry.at("length").get<int64_t>());
      const std::string protocol = entry.at("protocol").get<std::string>();
      if (std::find(protocols.begin(), protocols.end(), protocol) == protocols.end()) protocols.push_back(protocol);
    }
  }
  auto present = [&](int64_t length, const std::string& protocol) {
    for (const auto& document : documents) {
      for (const auto& entry : document.at("results")) {
        if (entry.at("length").get<int64_t>() == length && entry.at("protocol") == protocol) return true;
      }
    }
    return false;
  };
  std::vector<Column> columns;
  for (int64_t length : lengths) {
    const std::string l = std::to_string(length);
    if (options.layout == ReportLayout::Su) {
      if (present(length, "nonoverlap")) columns.push_back({length, "nonoverlap", "window", l + " natural"});
      if (present(length, "repeated")) columns.push_back({length, "repeated", options.part, l + " repeated"});
      continue;
    }
    for (const auto& protocol : protocols) {
      if (present(length, protocol)) {
        columns.push_back({length, protocol, options.part, protocols.size() > 1 ? l + " " + protocol : l});
      }
    }
  }
  return columns;
}

// What the numbers are: the metric, the split and, for the Su layout, what its two columns hold.
std::string legend(const json& first, const ReportOptions& options) {
  const std::string split = " on " + first.at("data").at("split").get<std::string>() + " split";
  if (options.layout == ReportLayout::Su) {
    const std::string repeated = options.part == "window" ? "whole repeated windows" : options.part + " part of repeated windows";
    return options.metric + split + "; natural: nonoverlap windows (Su's 不重复); repeated: " + repeated + " (Su's 重复)";
  }
  const bool part = options.part != "window" && options.metric != "beyond_ppl";
  return options.metric + (part ? " (" + options.part + " part)" : "") + split;
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
  const std::string read = schema_of(document);
  if (read == kResultsSchemaV1 && document.contains("protocol") && document["protocol"].is_object()) {
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
    document["schema"] = kResultsSchemaV2;
  }
  if (schema_of(document) == kResultsSchemaV2) {
    // Documents written while /2 already had treatments keep them.
    if (!document.contains("treatments")) {
      document["treatments"] = json::array({{{"name", kBaseline}, {"overlay", json::object()}}});
    }
    if (document.contains("results") && document["results"].is_array()) {
      for (auto& entry : document["results"]) {
        if (entry.is_object() && !entry.contains("treatment")) entry["treatment"] = kBaseline;
      }
    }
    document["schema"] = kResultsSchema;
  }
  if (schema_of(document) != read) document["upgraded_from"] = read;
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
  // The names of a non-empty array of objects, each with a unique string "name".
  auto names = [&](const std::string& key) {
    require(document, key, json::value_t::array, "");
    if (document[key].empty()) throw UserError(source + ": field " + key + " is empty");
    std::set<std::string> seen;
    for (const auto& item : document[key]) {
      require(item, "name", json::value_t::string, key + "[].");
      if (!seen.insert(item["name"].get<std::string>()).second) {
        throw UserError(source + ": " + key + "[].name " + item["name"].dump() + " is listed twice");
      }
    }
    return seen;
  };
  using T = json::value_t;
  require(document, "schema", T::string, "");
  if (document["schema"] != kResultsSchema) {
    const bool old = document["schema"] == kResultsSchemaV1 || document["schema"] == kResultsSchemaV2;
    throw UserError(source + ": schema is " + document["schema"].dump() + ", expected " + kResultsSchema +
                    (old ? " (extrap report reads the old schema from files)" : ""));
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
  const std::set<std::string> protocols = names("protocols");
  const std::set<std::string> treatments = names("treatments");
  for (const auto& treatment : document["treatments"]) require(treatment, "overlay", T::object, "treatments[].");
  require(document, "results", T::array, "");
  std::set<std::tuple<std::string, std::string, int64_t>> rows;
  for (const auto& entry : document["results"]) {
    require(entry, "length", T::number_integer, "results[].");
    for (const char* key : {"protocol", "treatment"}) {
      require(entry, key, T::string, "results[].");
      if (!(key == std::string("protocol") ? protocols : treatments).count(entry[key].get<std::string>())) {
        throw UserError(source + ": results[]." + key + " " + entry[key].dump() + " is not in " + key + "s[]");
      }
    }
    if (!rows.emplace(entry["treatment"].get<std::string>(), entry["protocol"].get<std::string>(),
                      entry["length"].get<int64_t>()).second) {
      throw UserError(source + ": results[] has two rows for treatment " + entry["treatment"].dump() + ", protocol " +
                      entry["protocol"].dump() + ", length " + entry["length"].dump());
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

ReportLayout parse_report_layout(const std::string& name) {
  if (name == "runs") return ReportLayout::Runs;
  if (name == "su") return ReportLayout::Su;
  throw UserError("--layout " + name + ": expected runs or su");
}

std::string render_report(const std::vector<json>& documents, const std::string& metric, TableFormat format,
                          const std::string& part) {
  return render_report(documents, ReportOptions{metric, format, part, ReportLayout::Runs});
}

std::string render_report(const std::vector<json>& documents, const ReportOptions& given) {
  const bool su = given.layout == ReportLayout::Su;
  ReportOptions options = given;
  if (options.metric.empty()) options.metric = su ? "acc" : "ppl";
  if (options.part.empty()) options.part = su ? "copy" : "window";
  static const std::set<std::string> metrics{"ppl", "bpb", "nll", "acc", "beyond_ppl"};
  static const std::set<std::string> parts{"window", "natural", "copy", "beyond"};
  if (!metrics.count(options.metric)) {
    throw UserError("--metric " + options.metric + ": expected ppl, bpb, nll, acc or beyond_ppl");
  }
  if (!parts.count(options.part)) throw UserError("--part " + options.part + ": expected window, natural, copy or beyond");
  const std::vector<Column> columns = report_columns(documents, options);
  if (su && columns.empty()) {
    throw UserError("--layout su: no nonoverlap or repeated rows (evaluate with --protocol nonoverlap,repeated)");
  }

  std::vector<Line> lines;
  for (const auto& document : documents) {
    for (const auto& treatment : document.at("treatments")) lines.push_back({&document, treatment.at("name").get<std::string>()});
  }
  const bool treated = std::any_of(lines.begin(), lines.end(), [](const Line& line) { return line.treatment != kBaseline; });
  std::vector<std::string> header;
  if (su) {
    header = documents.size() > 1 ? std::vector<std::string>{"run", "treatment"} : std::vector<std::string>{"treatment"};
  } else {
    header = {"run", "scheme"};
    if (treated) header.push_back("treatment");
    header.push_back("train");
  }
  const std::size_t labels = header.size(), names = su ? labels : labels - 1;  // names left, numbers right
  for (const auto& column : columns) header.push_back(column.label);
  std::vector<std::vector<std::string>> rows{header};
  std::vector<std::string> notes;
  for (const auto& line : lines) {
    std::vector<std::string> row;
    for (std::size_t c = 0; c < labels; ++c) row.push_back(line.label(header[c]));
    for (const auto& column : columns) {
      const json* entry = find_row(*line.document, line.treatment, column.length, column.protocol);
      row.push_back(cell(entry, options.metric, column.part));
      if (entry && entry->at("status") != "ok") {
        notes.push_back(line.name() + " @ " + column.label + ": " + entry->at("error").get<std::string>());
      }
    }
    rows.push_back(row);
  }
  std::string table = render_rows(rows, names, options.format);
  if (options.format == TableFormat::Csv) return table;

  std::ostringstream out;
  out << table;
  const json& first = documents.front();
  out << "\n" << legend(first, options) << "\n";
  if (su) {  // the runs layout shows these in its columns
    for (const auto& document : documents) {
      const Line line{&document, kBaseline};
      out << line.run() << ": " << line.label("scheme") << " trained at " << line.label("train") << " tokens\n";
    }
  }
  for (const auto& protocol : first.at("protocols")) out << "protocol " << describe_protocol(protocol) << "\n";
  for (const auto& note : notes) out << "n/a: " << note << "\n";
  for (const auto& document : documents) {
    if (document.value("complete", true) == false) {
      out << "warning: " << document.at("run").at("name").get<std::string>() << ": the evaluation stopped after "
          << document.at("results").size() << " result rows (interrupted); missing cells are blank\n";
    }
  }
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
  return out.str();
}

}  // namespace extrap
