#pragma once
// Token shards made by other tools, read in place (memory-mapped, never converted):
//   llm.c    *_train_*.bin / *_val_*.bin: a 256 x int32 little-endian header (magic 20240520 with
//            version 1 and uint16 tokens, or magic 20240801 with version 7 and uint32 tokens; word 2
//            is the token count), then the tokens
//   nanoGPT  train.bin / val.bin: headerless uint16 tokens
// `extrap data --corpus llmc|nanogpt` checks every file and every token once and writes a small
// descriptor dataset (metadata.json, format extrap.shards/1) naming the files; loading it checks
// each file's header, size and fingerprint again. Torch-free.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/token_stream.h"

namespace extrap {

namespace fs = std::filesystem;

inline constexpr const char* kShardsFormat = "extrap.shards/1";
inline constexpr int64_t kLlmcHeaderBytes = 256 * 4;

struct ShardOptions {
  std::string layout;  // llmc | nanogpt
  fs::path input;      // the directory holding the shards
  int64_t vocab_size = 0;   // 0: llm.c: 50257 (GPT-2); nanoGPT: from meta.json beside the files
  int64_t end_of_text = -1;  // -1: llm.c: 50256; nanoGPT: from meta.json
  fs::path vocabulary;       // optional byte-level BPE vocabulary, for bits per byte
};

// The "description" a descriptor dataset is made of: corpus, source, tokenizer and per split the
// files with their sizes, token counts and fingerprints. Throws UserError naming the file and value
// on a bad header, size, token id or option.
nlohmann::json describe_shards(const ShardOptions& options);

// The stream of one split from the descriptor's file list (the test split is the val files:
// llm.c and nanoGPT write one held-out set). Throws UserError naming a file that changed.
TokenStream open_shard_split(const nlohmann::json& split, const std::string& layout, const fs::path& metadata_path);

// Writes an llm.c shard (version 1: uint16, version 7: uint32) or a nanoGPT .bin: for fixtures.
void write_llmc_shard(const fs::path& path, const std::vector<uint32_t>& tokens, int version);
void write_nanogpt_bin(const fs::path& path, const std::vector<uint32_t>& tokens);

}  // namespace extrap
