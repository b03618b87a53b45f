#pragma once
// What the writer (dataset.cpp) and the loader (dataset_load.cpp) of prepared datasets share.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kFormat = "extrap.dataset/1";
// Adds per-token loss masks (task datasets). Text corpora are still written as /1, which every
// reader reads; a /1 reader refuses /2 rather than train on the prompts of a task.
inline constexpr const char* kMaskedFormat = "extrap.dataset/2";
inline constexpr const char* kTokenizerModelFile = "tokenizer.model";
// Prepared streams are uint16: a tokenizer may have at most this many ids.
inline constexpr int64_t kMaxPreparedVocabulary = 65536;
inline const std::vector<std::string> kSplitNames = {"train", "val", "test"};

// Over the split checksums, then (format /2) the mask checksums, each in the order train, val, test;
// shard descriptors: over the file fingerprints.
std::string combined_checksum(const nlohmann::json& splits, bool masked);
std::string shards_checksum(const nlohmann::json& splits);

}  // namespace extrap
