#include "report/probe_grid.h"

#include <set>
#include <sstream>

#include "common/error.h"
#include "report/results.h"

namespace extrap {
namespace {

using nlohmann::json;

std::string metric_cell(const json& summary, const std::string& metric) {
  if (metric == "greedy") {  // only with --greedy, and never for the controls
    const json* greedy = summary.contains("greedy") ? &summary.at("greedy") : nullptr;
    return greedy && greedy->contains("found") ? fixed(100.0 * greedy->at("found").get<double>(), 1) : "";
  }
  if (metric == "logprob") return fixed(summary.at("answer_logprob").get<double>(), 2);
  const char* field = metric == "acc" ? "token_accuracy" : "exact_match";
  return fixed(100.0 * summary.at(field).get<double>(), 1);
}

// The summary of `row` a grid line shows: a depth's, "all" (the row itself) or "control".
const json* line_summary(const json& row, const std::string& line) {
  if (line == "all") return &row;
  if (line == "control") return &row.at("control");
  if (!row.contains("depths")) return nullptr;
  for (const auto& entry : row.at("depths")) {
    if (fixed(entry.at("depth").get<double>(), 2) == line) return &entry;
  }
  return nullptr;
}

struct Grid {
  std::string run, treatment, probe;
  int64_t train_length = 0;
  std::vector<const json*> rows;  // by ascending length
};

std::vector<Grid> probe_grids(const std::vector<json>& documents) {
  const std::vector<std::string> runs = run_labels(documents);
  std::vector<Grid> grids;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    for (const auto& treatment : documents[d].at("treatments")) {
      for (const auto& protocol : documents[d].at("protocols")) {
        if (!is_probe_protocol(protocol)) continue;
        Grid grid{runs[d], treatment.at("name").get<std::string>(), protocol.at("name").get<std::string>(),
                  documents[d].at("run").at("config").at("data").at("train_length").get<int64_t>(), {}};
        for (const auto& row : documents[d].at("results")) {
          if (row.at("treatment") == grid.treatment && row.at("protocol") == grid.probe) grid.rows.push_back(&row);
        }
        std::sort(grid.rows.begin(), grid.rows.end(), [](const json* a, const json* b) {
          return a->at("length").get<int64_t>() < b->at("length").get<int64_t>();
        });
        if (!grid.rows.empty()) grids.push_back(std::move(grid));
      }
    }
  }
  return grids;
}

// "0.00", "0.10", ... (every depth of the grid's rows), then "all" and "control".
std::vector<std::string> grid_lines(const Grid& grid) {
  std::set<double> depths;
  for (const json* row : grid.rows) {
    for (const auto& entry : row->value("depths", json::array())) depths.insert(entry.at("depth").get<double>());
  }
  std::vector<std::string> lines;
  for (double depth : depths) lines.push_back(fixed(depth, 2));
  lines.push_back("all");
  lines.push_back("control");
  return lines;
}

std::vector<std::string> grid_cells(const Grid& grid, const std::string& line, const std::string& metric) {
  std::vector<std::string> cells;
  for (const json* row : grid.rows) {
    if (row->at("status") != "ok") {
      cells.push_back("n/a");
      continue;
    }
    const json* summary = line_summary(*row, line);
    cells.push_back(summary ? metric_cell(*summary, metric) : "");
  }
  return cells;
}

std::vector<std::string> length_labels(const Grid& grid) {
  std::vector<std::string> labels;
  for (const json* row : grid.rows) labels.push_back(std::to_string(row->at("length").get<int64_t>()));
  return labels;
}

std::string metric_legend(const std::string& metric) {
  if (metric == "logprob") return "answer log-probability (nats, summed over the answer tokens)";
  if (metric == "acc") return "answer-token accuracy (%, teacher-forced argmax)";
  if (metric == "greedy") return "found by greedy decoding (%: every answer in the continuation; eval --greedy)";
  return "exact match (%: every answer token the argmax, teacher-forced)";
}

}  // namespace

std::string render_probe_grid(const std::vector<json>& documents, const std::string& metric, TableFormat format) {
  if (metric != "em" && metric != "acc" && metric != "logprob" && metric != "greedy") {
    throw UserError("--metric " + metric + ": the probe layout shows em, acc, logprob or greedy");
  }
  const std::vector<Grid> grids = probe_grids(documents);
  if (grids.empty()) throw UserError("--layout probe: no probe rows (evaluate with e.g. --protocol passkey)");
  std::ostringstream out;
  if (format == TableFormat::Csv) {  // one tidy table: every grid's lines under one header
    std::set<int64_t> all_lengths;
    for (const auto& grid : grids) {
      for (const json* row : grid.rows) all_lengths.insert(row->at("length").get<int64_t>());
    }
    std::vector<std::vector<std::string>> rows{{"run", "treatment", "probe", "depth"}};
    for (int64_t length : all_lengths) rows[0].push_back(std::to_string(length));
    for (const auto& grid : grids) {
      for (const auto& line : grid_lines(grid)) {
        std::vector<std::string> row{grid.run, grid.treatment, grid.probe, line};
        const auto cells = grid_cells(grid, line, metric);
        for (int64_t length : all_lengths) {
          std::string text;
          for (std::size_t r = 0; r < grid.rows.size(); ++r) {
            if (grid.rows[r]->at("length").get<int64_t>() == length) text = cells[r];
          }
          row.push_back(text);
        }
        rows.push_back(row);
      }
    }
    return render_rows(rows, 4, format);
  }
  for (const auto& grid : grids) {
    const std::string title = grid.run + (grid.treatment == "baseline" ? "" : " / " + grid.treatment) + ": " +
                              grid.probe + ", trained at " + std::to_string(grid.train_length);
    out << (format == TableFormat::Markdown ? "**" + title + "**\n\n" : title + "\n");
    std::vector<std::vector<std::string>> rows{{"depth"}};
    for (const auto& label : length_labels(grid)) rows[0].push_back(label);
    for (const auto& line : grid_lines(grid)) {
      std::vector<std::string> row{line};
      for (const auto& cell : grid_cells(grid, line, metric)) row.push_back(cell);
      rows.push_back(row);
    }
    out << render_rows(rows, 1, format) << "\n";
  }
  out << metric_legend(metric) << "; columns: prompt length in tokens; control: the same prompts without the needle\n";
  return out.str();
}

}  // namespace extrap
