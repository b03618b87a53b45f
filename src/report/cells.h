#pragma once
// The numbers in the cells of `extrap report`'s runs and su layouts: one result row's metric, and
// the mean ± sample standard deviation of the same cell over several seeds. Torch-free.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

// A cell's number as shown: `value` (a rate already in percent) with `digits` decimals and a unit.
struct CellNumber {
  double value = 0;
  int digits = 2;
  std::string unit;  // "%" or ""
};

// The number `metric` (over `part` of the row) of an ok row; nullopt where the row has none
// (shown as "-").
std::optional<CellNumber> cell_number(const nlohmann::json& entry, const std::string& metric, const std::string& part);

// One row's cell: "" without a row, "n/a" for a row that could not run, "-" where it has no such number.
std::string cell(const nlohmann::json* entry, const std::string& metric, const std::string& part);

struct MeanStd {
  double mean = 0, std = 0;  // std: the sample standard deviation (n - 1), 0 for one value
  std::size_t n = 0;
};
MeanStd mean_and_std(const std::vector<double>& values);

// The cell of one line over the rows of several seeds (nullptr where a seed has none):
// "2.78 ± 0.03", with " (n=2)" when fewer than all `entries` have the number. Without any number,
// the first seed's cell.
std::string seeds_cell(const std::vector<const nlohmann::json*>& entries, const std::string& metric, const std::string& part);

}  // namespace extrap
