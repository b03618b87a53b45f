#pragma once
// Prepared datasets: byte-level token streams split into train / val / test by document (the
// corpus readers that feed them are in data/corpus.h).
// Layout of a prepared directory (see docs/data.md):
//   metadata.json   format, tokenizer, corpus, seed, per-split counts and checksums
//   documents.tsv   one line per document: split, offset (in its split stream), tokens, name
//   train.bin val.bin test.bin   uint16 little-endian token streams; every document is followed
//                                by the end-of-text token 256
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

namespace fs = std::filesystem;

// Byte-level tokenizer: token = byte value (0..255); 256 separates documents.
inline constexpr int64_t kByteVocabulary = 257;
inline constexpr uint16_t kEndOfText = 256;
std::vector<uint16_t> encode_bytes(const std::string& text);

struct PrepareOptions {
  std::string corpus;  // brown | kjv | text
  fs::path input;
  fs::path output;
  uint64_t seed = 0;
  double val_fraction = 0.05;
  double test_fraction = 0.05;
};

// Tokenizes, splits by document (a seeded shuffle; held-out documents are never in train) and
// writes the prepared directory atomically (built under a temporary name, then renamed).
// Returns the metadata written.
nlohmann::json prepare_dataset(const PrepareOptions& options);

struct DocumentEntry {
  std::string split;
  int64_t offset = 0;
  int64_t tokens = 0;  // excluding the end-of-text separator
  std::string name;
};

class Dataset {
 public:
  // Verifies the layout and the checksums; throws UserError naming the file on any problem.
  static Dataset load(const fs::path& dir);

  const std::vector<uint16_t>& split(const std::string& name) const;  // train | val | test
  const std::vector<DocumentEntry>& documents() const { return documents_; }
  const nlohmann::json& metadata() const { return metadata_; }
  const fs::path& dir() const { return dir_; }
  // Identity recorded in runs and results: the combined checksum of all split streams.
  std::string checksum() const { return metadata_.at("checksum").get<std::string>(); }

 private:
  fs::path dir_;
  nlohmann::json metadata_;
  std::map<std::string, std::vector<uint16_t>> splits_;
  std::vector<DocumentEntry> documents_;
};

}  // namespace extrap
