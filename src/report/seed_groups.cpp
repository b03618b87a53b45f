#include "report/seed_groups.h"

#include <algorithm>

#include "report/text_table.h"

namespace extrap {
namespace {

using nlohmann::json;

// What must be equal for two documents to be seeds of one line.
json group_key(const json& document) {
  json config = document.at("run").at("config");
  config.erase("seed");
  return {config, document.at("data").value("checksum", ""), document.at("data").value("split", ""),
          document.at("protocols")};
}

bool seeds_distinct(const std::vector<const json*>& documents) {
  std::vector<int64_t> seeds;
  for (const json* document : documents) {
    const json& config = document->at("run").at("config");
    if (!config.contains("seed") || !config.at("seed").is_number_integer()) return false;
    seeds.push_back(config.at("seed").get<int64_t>());
  }
  std::sort(seeds.begin(), seeds.end());
  return std::adjacent_find(seeds.begin(), seeds.end()) == seeds.end();
}

}  // namespace

std::string SeedGroup::seed_list() const {
  std::string list;
  for (const auto seed : seeds) list += (list.empty() ? "" : ",") + std::to_string(seed);
  return list;
}

std::vector<SeedGroup> group_seeds(const std::vector<json>& documents) {
  std::vector<json> keys;
  std::vector<std::vector<const json*>> candidates;
  for (const auto& document : documents) {
    const json key = group_key(document);
    const auto found = std::find(keys.begin(), keys.end(), key);
    if (found == keys.end()) {
      keys.push_back(key);
      candidates.push_back({&document});
    } else {
      candidates[std::size_t(found - keys.begin())].push_back(&document);
    }
  }
  std::vector<SeedGroup> groups;
  std::vector<json> representatives;  // labelled as the lines they stand for: without their seed when grouped
  for (const auto& members : candidates) {
    if (members.size() > 1 && seeds_distinct(members)) {
      SeedGroup group{members, {}, ""};
      for (const json* document : members) group.seeds.push_back(document->at("run").at("config").at("seed").get<int64_t>());
      groups.push_back(group);
      representatives.push_back(*members.front());
      representatives.back()["run"]["config"].erase("seed");
      continue;
    }
    for (const json* document : members) {
      groups.push_back({{document}, {}, ""});
      representatives.push_back(*document);
    }
  }
  // Back in the order of the inputs' first documents (a group of seeds stands where its first did).
  std::vector<std::size_t> order(groups.size());
  for (std::size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return groups[a].documents.front() < groups[b].documents.front(); });
  std::vector<SeedGroup> sorted;
  std::vector<json> sorted_representatives;
  for (const auto g : order) {
    sorted.push_back(groups[g]);
    sorted_representatives.push_back(representatives[g]);
  }
  const auto labels = run_labels(sorted_representatives);
  for (std::size_t g = 0; g < sorted.size(); ++g) sorted[g].label = labels[g];
  return sorted;
}

std::vector<std::string> document_labels(const std::vector<json>& documents, const std::vector<SeedGroup>& groups) {
  std::vector<std::string> labels(documents.size());
  for (const auto& group : groups) {
    for (std::size_t m = 0; m < group.documents.size(); ++m) {
      const std::size_t d = std::size_t(group.documents[m] - documents.data());
      labels[d] = group.aggregated() ? group.label + " seed=" + std::to_string(group.seeds[m]) : group.label;
    }
  }
  return labels;
}

}  // namespace extrap
