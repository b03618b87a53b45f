#include "report/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "report/results.h"

namespace extrap {
namespace {

using nlohmann::json;

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

const std::string kBaseline = kBaselineTreatment;

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

bool is_task_row(const json& entry) { return entry.at("protocol") == "task"; }

// A task row's cell: exact match or its per-answer-token metrics.
std::string task_cell(const json& entry, const std::string& metric, const std::string& part) {
  if (part != "window" || metric == "beyond_ppl") return "-";
  const double nll = entry.at("nll").get<double>();
  if (metric == "em") return fixed(100.0 * entry.at("exact_match").get<double>(), 2) + "%";
  if (metric == "acc") return fixed(100.0 * entry.at("accuracy").get<double>(), 2) + "%";
  if (metric == "ppl") return fixed(std::exp(nll), 2);
  if (metric == "bpb") return fixed(nll / std::log(2.0), 3);
  return fixed(nll, 4);
}

std::string cell(const json* entry, const std::string& metric, const std::string& part) {
  if (!entry) return "";
  if (entry->at("status") != "ok") return "n/a";
  if (is_task_row(*entry)) return task_cell(*entry, metric, part);
  if (metric == "em") return "-";
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

// What the report calls each input: its run name, unless other inputs share it (two `--set`
// variants of one config). Then the config fields whose values differ within the group, up to
// three in path order ("rope (position.base=500.0)"), or where the configs are equal and the run
// directories are not, the run directory.
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

// One line of a report: a document under one of its treatments.
struct Line {
  const json* document;
  std::string run;  // its label (run_labels)
  std::string treatment;
  // "rope" for the untreated model, "rope / PI" for a treatment (in notes).
  std::string name() const { return treatment == kBaseline ? run : run + " / " + treatment; }
  std::string label(const std::string& column) const {
    const json& config = document->at("run").at("config");
    if (column == "run") return run;
    if (column == "scheme") return config.at("position").at("scheme").get<std::string>();
    if (column == "train") {  // a task run: the example lengths it trained on
      const json& data = document->at("data");
      if (data.contains("task")) {
        const json& seen = data.at("task").at("train_lengths");
        return std::to_string(seen.at(0).get<int64_t>()) + "-" + std::to_string(seen.at(1).get<int64_t>());
      }
      return std::to_string(config.at("data").at("train_length").get<int64_t>());
    }
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
  if (options.metric == "em") {
    return "em: exact match of whole answers" + split + "; task columns are length bins named by their upper end";
  }
  return options.metric + (part ? " (" + options.part + " part)" : "") + split;
}

// Inputs that are incomplete, or not comparable with the first (other tokens or protocol parameters).
std::string warnings(const std::vector<json>& documents, const std::vector<std::string>& runs) {
  std::ostringstream out;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    if (documents[d].value("complete", true) == false) {
      out << "warning: " << runs[d] << ": the evaluation stopped after " << documents[d].at("results").size()
          << " result rows (interrupted); missing cells are blank\n";
    }
  }
  const json& first = documents.front();
  for (std::size_t d = 0; d < documents.size(); ++d) {
    const json& document = documents[d];
    bool same = document.at("data").at("checksum") == first.at("data").at("checksum") &&
                document.at("data").at("split") == first.at("data").at("split");
    for (const auto& protocol : document.at("protocols")) {
      for (const auto& reference : first.at("protocols")) {
        if (reference.at("name") == protocol.at("name") && reference != protocol) same = false;
      }
    }
    if (!same) {
      out << "warning: " << runs[d] << " was evaluated on other data or with other protocol parameters than "
          << runs[0] << "; its numbers are not comparable\n";
    }
  }
  return out.str();
}

}  // namespace

std::string describe_result(const json& entry) {
  if (entry.at("status") != "ok") return entry.value("error", "failed");
  std::ostringstream out;
  if (entry.value("protocol", "") == "task") {
    const auto& ci = entry.at("exact_match_ci");
    out << "bin " << entry["bin"][0] << ".." << entry["bin"][1] << " | exact match "
        << fixed(100.0 * entry["exact_match"].get<double>(), 2) << "% [" << fixed(100.0 * ci[0].get<double>(), 1) << ", "
        << fixed(100.0 * ci[1].get<double>(), 1) << "] | answer acc " << fixed(100.0 * entry["accuracy"].get<double>(), 2)
        << "% | answer nll " << fixed(entry["nll"], 4) << " | " << entry["examples"].get<int64_t>() << " examples in "
        << fixed(entry["seconds"], 1) << " s";
    return out.str();
  }
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
  } else if (name == "task") {
    text += protocol.value("task", "?") + " examples of " + protocol.at("lengths").dump() + " tokens in bins " +
            protocol.at("bins").dump() + " (" + number("examples") + " examples); trained on lengths " +
            protocol.at("train_lengths").dump();
  } else if (name == "repeated") {
    text += "a natural segment of ceil(L/2) tokens and its copy, at least " + number("max_tokens") +
            " targets at length L";
  } else {
    text += protocol.dump();
  }
  return text;
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
  const auto only_tasks = [&] {
    for (const auto& document : documents) {
      for (const auto& protocol : document.at("protocols")) {
        if (protocol.at("name") != "task") return false;
      }
    }
    return true;
  };
  if (options.metric.empty()) options.metric = su ? "acc" : only_tasks() ? "em" : "ppl";
  if (options.part.empty()) options.part = su ? "copy" : "window";
  static const std::set<std::string> metrics{"ppl", "bpb", "nll", "acc", "beyond_ppl", "em"};
  static const std::set<std::string> parts{"window", "natural", "copy", "beyond"};
  if (!metrics.count(options.metric)) {
    throw UserError("--metric " + options.metric + ": expected ppl, bpb, nll, acc, beyond_ppl or em");
  }
  if (!parts.count(options.part)) throw UserError("--part " + options.part + ": expected window, natural, copy or beyond");
  const std::vector<Column> columns = report_columns(documents, options);
  if (su && columns.empty()) {
    throw UserError("--layout su: no nonoverlap or repeated rows (evaluate with --protocol nonoverlap,repeated)");
  }

  const std::vector<std::string> runs = run_labels(documents);
  std::vector<Line> lines;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    for (const auto& treatment : documents[d].at("treatments")) {
      lines.push_back({&documents[d], runs[d], treatment.at("name").get<std::string>()});
    }
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
    for (std::size_t d = 0; d < documents.size(); ++d) {
      const Line line{&documents[d], runs[d], kBaseline};
      out << line.run << ": " << line.label("scheme") << " trained at " << line.label("train") << " tokens\n";
    }
  }
  for (const auto& protocol : first.at("protocols")) out << "protocol " << describe_protocol(protocol) << "\n";
  for (const auto& note : notes) out << "n/a: " << note << "\n";
  out << warnings(documents, runs);
  return out.str();
}

}  // namespace extrap
