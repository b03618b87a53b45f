#include "report/tables.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "report/cells.h"
#include "report/probe_grid.h"
#include "report/results.h"
#include "report/seed_groups.h"

namespace extrap {
namespace {

using nlohmann::json;

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

// The tokenizer a results document was scored with (older results: bytes).
std::string tokenizer_label(const json& document) {
  const json& data = document.at("data");
  if (!data.contains("tokenizer")) return "byte/257";
  const json& tokenizer = data.at("tokenizer");
  std::string label = tokenizer.at("type").get<std::string>() + "/" + tokenizer.at("vocab_size").dump();
  if (tokenizer.contains("checksum")) label += "/" + tokenizer.at("checksum").get<std::string>().substr(0, 8);
  return label;
}

// Per-token metrics (perplexity, loss, accuracy) measure different units under different
// tokenizers; bits per byte and exact match do not.
void check_comparable(const std::vector<json>& documents, const std::string& metric) {
  if (metric == "bpb" || metric == "em") return;
  std::set<std::string> labels;
  for (const auto& document : documents) labels.insert(tokenizer_label(document));
  if (labels.size() < 2) return;
  std::string names;
  for (const auto& label : labels) names += (names.empty() ? "" : ", ") + label;
  throw UserError("--metric " + metric + ": these results use different tokenizers (" + names +
                  "), whose tokens differ, so per-token " + metric + " does not compare; use --metric bpb");
}

// One column of numbers: the (length, protocol) row of each line, and the part of it shown.
struct Column {
  int64_t length;
  std::string protocol, part, label;
};

// One line of a report: a document (or the seeds of one config) under one of its treatments.
struct Line {
  const SeedGroup* group;
  std::string treatment;
  const json& document() const { return *group->documents.front(); }
  // "rope" for the untreated model, "rope / PI" for a treatment (in notes).
  std::string name() const { return treatment == kBaseline ? group->label : group->label + " / " + treatment; }
  std::string label(const std::string& column) const {
    const json& config = document().at("run").at("config");
    if (column == "run") return group->label;
    if (column == "seeds") return group->aggregated() ? group->seed_list() : config.value("seed", json()).dump();
    if (column == "scheme") return config.at("position").at("scheme").get<std::string>();
    if (column == "train") {  // a task run: the example lengths it trained on
      const json& data = document().at("data");
      if (data.contains("task")) {
        const json& seen = data.at("task").at("train_lengths");
        return std::to_string(seen.at(0).get<int64_t>()) + "-" + std::to_string(seen.at(1).get<int64_t>());
      }
      return std::to_string(config.at("data").at("train_length").get<int64_t>());
    }
    return treatment;
  }
  // The line's cell for one column, and a note for each of its rows that could not run.
  std::string cell_for(const Column& column, const std::string& metric, std::vector<std::string>& notes) const {
    std::vector<const json*> entries;
    for (std::size_t m = 0; m < group->documents.size(); ++m) {
      const json* entry = find_row(*group->documents[m], treatment, column.length, column.protocol);
      entries.push_back(entry);
      if (entry && entry->at("status") != "ok") {
        const std::string seed = group->aggregated() ? " seed=" + std::to_string(group->seeds[m]) : "";
        notes.push_back(name() + seed + " @ " + column.label + ": " + entry->at("error").get<std::string>());
      }
    }
    return group->aggregated() ? seeds_cell(entries, metric, column.part) : cell(entries.front(), metric, column.part);
  }
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
  const bool probes = std::any_of(first.at("protocols").begin(), first.at("protocols").end(),
                                  [](const json& protocol) { return is_probe_protocol(protocol); });
  const std::string probe_note = probes ? "; probe columns: exact match of the answers (--layout probe: per depth)" : "";
  if (options.metric == "em") {
    return "em: exact match of whole answers" + split + "; task columns are length bins named by their upper end" +
           probe_note;
  }
  return options.metric + (part ? " (" + options.part + " part)" : "") + split + probe_note;
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
    // Other tokens of the same documents (another tokenizer) still compare in bits per byte.
    const json& data = document.at("data");
    const bool same_text = data.contains("text") && data.at("text") == first.at("data").value("text", json());
    bool same = (data.at("checksum") == first.at("data").at("checksum") || same_text) &&
                data.at("split") == first.at("data").at("split");
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
  if (entry.contains("control")) {  // a probe row
    const auto& ci = entry["exact_match_ci"];
    out << "exact match " << fixed(100.0 * entry["exact_match"].get<double>(), 1) << "% [" << fixed(100.0 * ci[0].get<double>(), 1)
        << ", " << fixed(100.0 * ci[1].get<double>(), 1) << "] | answer-token acc "
        << fixed(100.0 * entry["token_accuracy"].get<double>(), 1) << "% | without the needle "
        << fixed(100.0 * entry["control"]["exact_match"].get<double>(), 1) << "% | " << entry["trials"].get<int64_t>()
        << " prompts in " << fixed(entry["seconds"], 1) << " s";
    return out.str();
  }
  if (entry.value("protocol", "") == "task") {
    const auto& ci = entry.at("exact_match_ci");
    out << "bin " << entry["bin"][0] << ".." << entry["bin"][1] << " | exact match "
        << fixed(100.0 * entry["exact_match"].get<double>(), 2) << "% [" << fixed(100.0 * ci[0].get<double>(), 1) << ", "
        << fixed(100.0 * ci[1].get<double>(), 1) << "] | answer acc " << fixed(100.0 * entry["accuracy"].get<double>(), 2)
        << "% | answer nll " << fixed(entry["nll"], 4) << " | " << entry["examples"].get<int64_t>() << " examples in "
        << fixed(entry["seconds"], 1) << " s";
    return out.str();
  }
  out << "ppl " << fixed(entry["ppl"], 3) << " | bpb "
      << (entry["bits_per_byte"].is_null() ? std::string("-") : fixed(entry["bits_per_byte"], 4)) << " | acc "
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
  } else if (is_probe_protocol(protocol)) {
    const auto depths = protocol.value("depths", json::array());
    text += number("trials") + " prompts" + (depths.empty() ? "" : " at each of " + std::to_string(depths.size()) +
            " depths (" + protocol.value("haystack", "") + " haystack)") + " per length, each with a no-needle control";
  } else {
    text += protocol.dump();
  }
  return text;
}

ReportLayout parse_report_layout(const std::string& name) {
  if (name == "runs") return ReportLayout::Runs;
  if (name == "su") return ReportLayout::Su;
  if (name == "probe") return ReportLayout::Probe;
  throw UserError("--layout " + name + ": expected runs, su or probe");
}

std::string render_report(const std::vector<json>& documents, const std::string& metric, TableFormat format,
                          const std::string& part) {
  return render_report(documents, ReportOptions{metric, format, part, ReportLayout::Runs});
}

std::string render_report(const std::vector<json>& documents, const ReportOptions& given) {
  if (given.layout == ReportLayout::Probe) {
    if (!given.part.empty()) throw UserError("--part applies only to the runs and su layouts");
    return render_probe_grid(documents, given.metric.empty() ? "em" : given.metric, given.format);
  }
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
  check_comparable(documents, options.metric);
  const std::vector<Column> columns = report_columns(documents, options);
  if (su && columns.empty()) {
    throw UserError("--layout su: no nonoverlap or repeated rows (evaluate with --protocol nonoverlap,repeated)");
  }

  const std::vector<SeedGroup> groups = group_seeds(documents);
  const bool aggregated = std::any_of(groups.begin(), groups.end(), [](const SeedGroup& g) { return g.aggregated(); });
  std::vector<Line> lines;
  for (const auto& group : groups) {
    for (const auto& treatment : group.documents.front()->at("treatments")) {
      lines.push_back({&group, treatment.at("name").get<std::string>()});
    }
  }
  const bool treated = std::any_of(lines.begin(), lines.end(), [](const Line& line) { return line.treatment != kBaseline; });
  std::vector<std::string> header;
  if (su) {
    header = groups.size() > 1 ? std::vector<std::string>{"run", "treatment"} : std::vector<std::string>{"treatment"};
    if (aggregated) header.push_back("seeds");
  } else {
    header = {"run", "scheme"};
    if (treated) header.push_back("treatment");
    if (aggregated) header.push_back("seeds");
    header.push_back("train");  // right-aligned, as the numbers after it
  }
  const std::size_t labels = header.size(), names = su ? labels : labels - 1;  // names left, numbers right
  for (const auto& column : columns) header.push_back(column.label);
  std::vector<std::vector<std::string>> rows{header};
  std::vector<std::string> notes;
  for (const auto& line : lines) {
    std::vector<std::string> row;
    for (std::size_t c = 0; c < labels; ++c) row.push_back(line.label(header[c]));
    for (const auto& column : columns) row.push_back(line.cell_for(column, options.metric, notes));
    rows.push_back(row);
  }
  std::string table = render_rows(rows, names, options.format);
  if (options.format == TableFormat::Csv) return table;

  std::ostringstream out;
  out << table;
  const json& first = documents.front();
  out << "\n" << legend(first, options) << "\n";
  if (aggregated) {
    out << "a line with several seeds: mean ± sample standard deviation over them; (n=k): only k have that cell\n";
  }
  if (su) {  // the runs layout shows these in its columns
    for (const auto& group : groups) {
      const Line line{&group, kBaseline};
      out << group.label << ": " << line.label("scheme") << " trained at " << line.label("train") << " tokens\n";
    }
  }
  for (const auto& protocol : first.at("protocols")) out << "protocol " << describe_protocol(protocol) << "\n";
  for (const auto& note : notes) out << "n/a: " << note << "\n";
  out << warnings(documents, document_labels(documents, groups));
  return out.str();
}

}  // namespace extrap
