#pragma once
// The lines of `extrap report`: each results document on its own, except documents of one config
// trained with several seeds, which share a line whose cells are mean ± standard deviation
// (report/cells.h). Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

struct SeedGroup {
  std::vector<const nlohmann::json*> documents;  // in input order
  std::vector<int64_t> seeds;                    // run.config.seed of each, when grouped
  std::string label;                             // what the report calls the line (run_labels)
  bool aggregated() const { return documents.size() > 1; }
  std::string seed_list() const;                 // "1,2,3"
};

// Documents whose run configs are equal but for `seed`, evaluated on the same data with the same
// protocols, form one group when their seeds are all different (the same run evaluated twice is
// not a second seed); every other document is a group of its own. Groups keep the order of their
// first documents, and their labels tell apart groups that share a run name.
std::vector<SeedGroup> group_seeds(const std::vector<nlohmann::json>& documents);

// The label of each document, for messages about one input: its group's, with " seed=S" in a group.
std::vector<std::string> document_labels(const std::vector<nlohmann::json>& documents, const std::vector<SeedGroup>& groups);

}  // namespace extrap
