#include "report/cells.h"

#include <cmath>

#include "report/text_table.h"

namespace extrap {
namespace {

using nlohmann::json;

// The part of a row a report cell shows: the row itself, or one of its sub-objects (`nullptr`
// when the row has no such part or it scored nothing).
const json* row_part(const json& entry, const std::string& part) {
  if (part == "window") return &entry;
  const std::string key = part == "beyond" ? "beyond_train" : part;
  if (!entry.contains(key) || entry.at(key).value("tokens", int64_t(0)) == 0) return nullptr;
  return &entry.at(key);
}

CellNumber percent(double rate, int digits) { return {100.0 * rate, digits, "%"}; }

// A task row's cell: exact match or its per-answer-token metrics.
std::optional<CellNumber> task_number(const json& entry, const std::string& metric, const std::string& part) {
  if (part != "window" || metric == "beyond_ppl") return std::nullopt;
  const double nll = entry.at("nll").get<double>();
  if (metric == "em") return percent(entry.at("exact_match").get<double>(), 2);
  if (metric == "acc") return percent(entry.at("accuracy").get<double>(), 2);
  if (metric == "ppl") return CellNumber{std::exp(nll), 2, ""};
  if (metric == "bpb") return CellNumber{nll / std::log(2.0), 3, ""};
  return CellNumber{nll, 4, ""};
}

std::string text(const CellNumber& number) { return fixed(number.value, number.digits) + number.unit; }

}  // namespace

std::optional<CellNumber> cell_number(const json& entry, const std::string& metric, const std::string& part) {
  if (entry.at("protocol") == "task") return task_number(entry, metric, part);
  if (entry.contains("control")) return percent(entry.at("exact_match").get<double>(), 1);  // a probe row
  if (metric == "em") return std::nullopt;
  const bool beyond = metric == "beyond_ppl";
  const json* source = row_part(entry, beyond ? "beyond" : part);
  if (!source) return std::nullopt;
  const std::string field = beyond ? "ppl" : metric;
  if (field == "acc") return percent(source->at("accuracy").get<double>(), 2);
  if (field == "ppl") return CellNumber{source->at("ppl").get<double>(), 2, ""};
  if (field == "bpb") {
    if (source->at("bits_per_byte").is_null()) return std::nullopt;
    return CellNumber{source->at("bits_per_byte").get<double>(), 3, ""};
  }
  return CellNumber{source->at("nll").get<double>(), 4, ""};
}

std::string cell(const json* entry, const std::string& metric, const std::string& part) {
  if (!entry) return "";
  if (entry->at("status") != "ok") return "n/a";
  const auto number = cell_number(*entry, metric, part);
  return number ? text(*number) : "-";
}

MeanStd mean_and_std(const std::vector<double>& values) {
  MeanStd result;
  result.n = values.size();
  if (values.empty()) return result;
  for (const double value : values) result.mean += value;
  result.mean /= double(values.size());
  if (values.size() < 2) return result;
  double squares = 0;
  for (const double value : values) squares += (value - result.mean) * (value - result.mean);
  result.std = std::sqrt(squares / double(values.size() - 1));
  return result;
}

std::string seeds_cell(const std::vector<const json*>& entries, const std::string& metric, const std::string& part) {
  std::vector<double> values;
  CellNumber shape;
  for (const json* entry : entries) {
    if (!entry || entry->at("status") != "ok") continue;
    if (const auto number = cell_number(*entry, metric, part)) {
      values.push_back(number->value);
      shape = *number;
    }
  }
  if (values.empty()) return cell(entries.front(), metric, part);
  const MeanStd stats = mean_and_std(values);
  std::string shown = text({stats.mean, shape.digits, shape.unit});
  if (stats.n > 1) shown += " ± " + text({stats.std, shape.digits, shape.unit});
  if (stats.n < entries.size()) shown += " (n=" + std::to_string(stats.n) + ")";
  return shown;
}

}  // namespace extrap
