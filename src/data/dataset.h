#pragma once
// Prepared datasets: token streams split into train / val / test by document (the corpus readers
// that feed them are in data/corpus.h, the tokenizers in data/tokenizer.h), or descriptors of
// token shards made elsewhere, read in place (data/shards.h).
// Layout of a prepared directory (see docs/data.md):
//   metadata.json   format, tokenizer, corpus, seed, per-split counts and checksums
//   documents.tsv   one line per document: split, offset (in its split stream), tokens, name
//   train.bin val.bin test.bin   uint16 little-endian token streams; every document is followed
//                                by the tokenizer's end-of-text token (256 for bytes)
//   tokenizer.model              SentencePiece datasets only: the model the streams were encoded with
//   train.mask val.mask test.mask  synthetic-task datasets only (format /2, data/task_dataset.h):
//                                one byte per token, 1 where the token is an answer the loss predicts
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/shards.h"
#include "data/token_stream.h"
#include "data/tokenizer.h"

namespace extrap {

namespace fs = std::filesystem;

// Byte-level tokenizer: token = byte value (0..255); 256 separates documents.
inline constexpr int64_t kByteVocabulary = 257;
inline constexpr uint16_t kEndOfText = 256;
std::vector<uint16_t> encode_bytes(const std::string& text);

struct PrepareOptions {
  std::string corpus;  // brown | kjv | text | jsonl | code (token shards: prepare_shard_dataset)
  fs::path input;
  std::string text_field = "text";                  // jsonl: the field that holds each document
  std::vector<std::string> extensions = {".c", ".h"};  // code: the files read
  fs::path output;
  uint64_t seed = 0;
  double val_fraction = 0.05;
  double test_fraction = 0.05;
  std::string tokenizer = "byte";  // byte | sentencepiece
  SentencePieceOptions sentencepiece;  // when training one on the train split
  fs::path tokenizer_model;            // an existing SentencePiece model instead
};

// Tokenizes, splits by document (a seeded shuffle; held-out documents are never in train) and
// writes the prepared directory atomically (built under a temporary name, then renamed).
// Returns the metadata written.
nlohmann::json prepare_dataset(const PrepareOptions& options);

// Checks llm.c or nanoGPT shards (every header and token) and writes a descriptor dataset naming
// them, atomically as above. Returns the metadata written.
nlohmann::json prepare_shard_dataset(const ShardOptions& options, const fs::path& output);

struct DocumentEntry {
  std::string split;
  int64_t offset = 0;
  int64_t tokens = 0;  // excluding the end-of-text separator
  std::string name;
};

// One split as written: its token stream, its documents and, for task datasets, its loss mask
// (one byte per token; empty for text corpora).
struct SplitStream {
  std::vector<uint16_t> tokens;
  std::vector<DocumentEntry> documents;
  std::vector<uint8_t> mask;
};

// Writes a prepared dataset atomically: built under OUTPUT.tmp-<pid>, then renamed to OUTPUT, which
// may only be an empty directory or an earlier dataset. `description` holds the source's metadata
// fields (corpus, seed, ... or the task, and a "tokenizer" unless it is bytes); format, splits,
// checksums and the time are added. Streams with masks make an "extrap.dataset/2" directory.
// `files` are written beside (name -> contents: a tokenizer model). Returns the metadata written.
nlohmann::json write_prepared_dataset(const fs::path& output, nlohmann::json description,
                                      const std::map<std::string, SplitStream>& streams,
                                      const std::map<std::string, std::string>& files = {});

class Dataset {
 public:
  // Verifies the layout and the checksums; throws UserError naming the file on any problem.
  static Dataset load(const fs::path& dir);

  const TokenStream& split(const std::string& name) const;  // train | val | test
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // "extrap" (prepared here) or the shard layout read in place ("llmc", "nanogpt").
  std::string layout() const;
  // What runs and results record of the dataset: path, format, corpus, tokenizer identity, checksum.
  nlohmann::json identity() const;
  // What identifies the tokenizer: type, vocabulary, end-of-text and, for a model file, its checksum.
  nlohmann::json tokenizer_identity() const;
  // What fixes the documents of each split whatever the tokenizer: corpus, source and the split
  // parameters (shards: their files).
  nlohmann::json text_identity() const;
  const std::vector<DocumentEntry>& documents() const { return documents_; }
  // The documents of one split, in stream order (for a task dataset: its examples). Shard datasets
  // list the documents of val and test only: the spans between end-of-text tokens.
  std::vector<DocumentEntry> documents(const std::string& split) const;
  // A synthetic-task dataset has metadata "task" and a loss mask per split.
  bool has_task() const { return metadata_.contains("task"); }
  const nlohmann::json& task() const { return metadata_.at("task"); }
  // One byte per token of the split (1: an answer token); empty without a task.
  const std::vector<uint8_t>& mask(const std::string& name) const;
  const nlohmann::json& metadata() const { return metadata_; }
  const fs::path& dir() const { return dir_; }
  // Identity recorded in runs and results: the combined checksum of all split streams.
  std::string checksum() const { return metadata_.at("checksum").get<std::string>(); }

 private:
  fs::path dir_;
  nlohmann::json metadata_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::map<std::string, TokenStream> splits_;
  std::map<std::string, std::vector<uint8_t>> masks_;
  std::vector<DocumentEntry> documents_;
};

}  // namespace extrap
