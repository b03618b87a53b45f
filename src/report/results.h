#pragma once
// Results documents (written by `extrap eval`, schema in docs/results.md): reading, upgrading
// older schemas and validation. Their tables are in report/tables.h. Torch-free.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kResultsSchema = "extrap.eval/3";    // rows per (treatment, protocol, length)
inline constexpr const char* kResultsSchemaV2 = "extrap.eval/2";  // one untreated model; read by upgrade_results
inline constexpr const char* kResultsSchemaV1 = "extrap.eval/1";  // one nonoverlap protocol; read by upgrade_results
inline constexpr const char* kBaselineTreatment = "baseline";     // the untreated model's treatment name

// Accepts a results file or a run directory (reads RUN/results/eval.json), upgrades an older
// document and validates it. Throws UserError.
nlohmann::json load_results(const std::filesystem::path& path);

// An older document as the current schema, step by step: "extrap.eval/1" to /2 (its protocol
// becomes protocols[0], every row gets "protocol": "nonoverlap"), /2 to /3 (a document without
// treatments gets "treatments": [{"name": "baseline", "overlay": {}}] and every row
// "treatment": "baseline"). "upgraded_from" records the schema read. Any other document is
// returned unchanged.
nlohmann::json upgrade_results(nlohmann::json document);

// Whether a `protocols[]` entry is a retrieval probe ("kind": "probe"): its rows hold exact-match
// summaries instead of language-model metrics.
bool is_probe_protocol(const nlohmann::json& protocol);

// Throws UserError naming the first field that does not follow the documented schema.
void validate_results(const nlohmann::json& document, const std::string& source);

}  // namespace extrap
