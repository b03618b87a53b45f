#include "report/results.h"

#include <set>
#include <tuple>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

const std::string kBaseline = kBaselineTreatment;

std::string schema_of(const json& document) {
  return document.is_object() && document.contains("schema") && document["schema"].is_string()
             ? document["schema"].get<std::string>()
             : "";
}

}  // namespace

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

namespace {

// A probe row's summary (the row itself, its control and each depth's): counts and rates.
template <typename Require>
void validate_probe_summary(const json& summary, const Require& require, const std::string& where) {
  require(summary, "trials", json::value_t::number_integer, where);
  for (const char* key : {"exact_match", "token_accuracy", "answer_logprob"}) {
    require(summary, key, json::value_t::number_float, where);
  }
  require(summary, "exact_match_ci", json::value_t::array, where);
}

template <typename Require>
void validate_probe_row(const json& entry, const Require& require) {
  validate_probe_summary(entry, require, "results[].");
  require(entry, "control", json::value_t::object, "results[].");
  validate_probe_summary(entry["control"], require, "results[].control.");
  require(entry, "seconds", json::value_t::number_float, "results[].");
  if (!entry.contains("depths")) return;  // mqar
  require(entry, "depths", json::value_t::array, "results[].");
  for (const auto& depth : entry["depths"]) {
    require(depth, "depth", json::value_t::number_float, "results[].depths[].");
    validate_probe_summary(depth, require, "results[].depths[].");
  }
}

}  // namespace

bool is_probe_protocol(const json& protocol) { return protocol.value("kind", "") == "probe"; }

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
  std::set<std::string> probes;
  for (const auto& protocol : document["protocols"]) {
    if (is_probe_protocol(protocol)) probes.insert(protocol["name"].get<std::string>());
  }
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
    if (probes.count(entry["protocol"].get<std::string>())) {
      validate_probe_row(entry, require);
      continue;
    }
    if (entry["protocol"] == "task") {  // exact match per length bin (docs/results.md, "Task rows")
      for (const char* key : {"exact_match", "nll", "accuracy", "seconds"}) require(entry, key, T::number_float, "results[].");
      for (const char* key : {"examples", "tokens"}) require(entry, key, T::number_integer, "results[].");
      for (const char* key : {"bin", "exact_match_ci"}) {
        require(entry, key, T::array, "results[].");
        if (entry[key].size() != 2 || !entry[key][0].is_number() || !entry[key][1].is_number()) {
          throw UserError(source + ": field results[]." + key + " is not a pair of numbers");
        }
      }
      continue;
    }
    for (const char* key : {"nll", "ppl", "accuracy", "seconds", "tokens_per_s"}) {
      require(entry, key, T::number_float, "results[].");
    }
    // null when the tokenizer does not know its tokens' byte lengths (external ids, no vocabulary)
    if (!entry["bits_per_byte"].is_null()) require(entry, "bits_per_byte", T::number_float, "results[].");
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

}  // namespace extrap
