#pragma once
// Plain-text tables shared by the report layouts (report/tables.h, report/probe_grid.h): aligned
// terminal columns, Markdown and CSV, numbers with fixed digits, and the label of each input run.
// Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

enum class TableFormat { Terminal, Markdown, Csv };
TableFormat parse_table_format(const std::string& name);

// `value` with `digits` digits after the point.
std::string fixed(double value, int digits);

// rows[0] is the header. The first `names` columns are left-aligned, the others (numbers)
// right-aligned; Markdown gets its separator line, CSV quotes fields as RFC 4180 says.
std::string render_rows(const std::vector<std::vector<std::string>>& rows, std::size_t names, TableFormat format);

// What the report calls each input: its run name, unless other inputs share it (two `--set`
// variants of one config). Then the config fields whose values differ within the group, up to
// three in path order ("rope (position.base=500.0)"), or where the configs are equal and the run
// directories are not, the run directory.
std::vector<std::string> run_labels(const std::vector<nlohmann::json>& documents);

}  // namespace extrap
