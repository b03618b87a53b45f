// Loading a dataset: a prepared directory, verified in full (checksums, tokens, documents), or a
// shard descriptor, whose files are checked by header, size and fingerprint.
#include <algorithm>
#include <charconv>

#include "common/error.h"
#include "common/files.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/dataset_format.h"

namespace extrap {
namespace {

using nlohmann::json;

std::string corrupted(const fs::path& path, const std::string& problem) {
  return path.string() + ": " + problem + "; the dataset is corrupted, re-run `extrap data`";
}

std::string json_error_text(const json::exception& e) {
  const std::string what = e.what();  // "[json.exception.type_error.302] type must be ..."
  const auto pos = what.find("] ");
  return pos == std::string::npos ? what : what.substr(pos + 2);
}

bool is_masked(const json& metadata) { return metadata.at("format") == kMaskedFormat; }
bool is_shards(const json& metadata) { return metadata.at("format") == kShardsFormat; }

void validate_metadata(const fs::path& path, const json& metadata) {
  const auto format = metadata.is_object() ? metadata.value("format", json()) : json();
  if (format != kFormat && format != kMaskedFormat && format != kShardsFormat) {
    throw UserError(path.string() + ": not an " + kFormat + ", " + kMaskedFormat + " or " + kShardsFormat +
                    " dataset; re-run `extrap data`");
  }
  try {
    const json& tokenizer = metadata.at("tokenizer");
    const auto vocab = tokenizer.at("vocab_size").get<int64_t>(), end_of_text = tokenizer.at("end_of_text").get<int64_t>();
    if (vocab < 2 || end_of_text < 0 || end_of_text >= vocab || (!is_shards(metadata) && vocab > kMaxPreparedVocabulary)) {
      throw UserError(path.string() + ": unsupported tokenizer " + tokenizer.dump());
    }
    for (const auto& name : kSplitNames) {
      const json& split = metadata.at("splits").at(name);
      if (split.at("tokens").get<int64_t>() < 0) throw UserError(path.string() + ": negative count in split " + name);
      if (is_shards(metadata)) {
        split.at("files").at(0).at("fingerprint").get<std::string>();
        continue;
      }
      if (split.at("documents").get<int64_t>() < 0) throw UserError(path.string() + ": negative count in split " + name);
      split.at("checksum").get<std::string>();
      if (is_masked(metadata)) split.at("mask_checksum").get<std::string>();
    }
    metadata.at("checksum").get<std::string>();
    if (is_masked(metadata) && !metadata.at("task").is_object()) {
      throw UserError(path.string() + ": malformed metadata: task is not an object");
    }
  } catch (const json::exception& e) {
    throw UserError(path.string() + ": malformed metadata: " + json_error_text(e));
  }
}

void require_dataset_file(const fs::path& path) {
  if (!fs::is_regular_file(path)) throw UserError(corrupted(path, "missing"));
}

void verify_checksum(const fs::path& path, const std::string& expected, const std::string& actual) {
  if (expected != actual) {
    throw UserError(corrupted(path, "checksum mismatch (expected " + expected + ", got " + actual + ")"));
  }
}

TokenStream read_split_stream(const fs::path& path, const json& split_metadata, int64_t vocab_size) {
  require_dataset_file(path);
  auto file = MappedFile::open(path);
  if (file->size() % 2 != 0) throw UserError(corrupted(path, "size " + std::to_string(file->size()) + " bytes is odd"));
  const auto expected_tokens = split_metadata.at("tokens").get<int64_t>();
  if (file->size() / 2 != expected_tokens) {
    throw UserError(corrupted(path, "holds " + std::to_string(file->size() / 2) + " tokens, metadata.json says " +
                                        std::to_string(expected_tokens)));
  }
  verify_checksum(path, split_metadata.at("checksum").get<std::string>(), fnv1a64_hex(file->data(), std::size_t(file->size())));
  TokenStream stream({mapped_segment(std::move(file), 0, 2)});
  if (int64_t(stream.max_token()) >= vocab_size) {
    throw UserError(corrupted(path, "token " + std::to_string(stream.max_token()) + " is outside the vocabulary of " +
                                        std::to_string(vocab_size)));
  }
  return stream;
}

// A loss mask: one byte 0 or 1 per token of its stream, never 1 on an end-of-text token.
std::vector<uint8_t> read_split_mask(const fs::path& path, const std::string& expected_checksum,
                                     const TokenStream& tokens, int64_t end_of_text) {
  require_dataset_file(path);
  const std::string bytes = read_text_file(path);
  if (int64_t(bytes.size()) != tokens.size()) {
    throw UserError(corrupted(path, "holds " + std::to_string(bytes.size()) + " bytes for " +
                                        std::to_string(tokens.size()) + " tokens"));
  }
  verify_checksum(path, expected_checksum, fnv1a64_hex(bytes.data(), bytes.size()));
  std::vector<uint8_t> mask(bytes.begin(), bytes.end());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] > 1 || (mask[i] == 1 && tokens[int64_t(i)] == end_of_text)) {
      throw UserError(corrupted(path, "byte " + std::to_string(i) + " is not a loss mask value for its token"));
    }
  }
  return mask;
}

bool parse_int64(const std::string& text, int64_t& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && value >= 0;
}

// One TSV line; the name is the rest of the line.
bool parse_document_line(const std::string& line, DocumentEntry& entry) {
  std::size_t begin = 0;
  std::string fields[3];
  for (auto& field : fields) {
    const auto tab = line.find('\t', begin);
    if (tab == std::string::npos) return false;
    field = line.substr(begin, tab - begin);
    begin = tab + 1;
  }
  entry.split = fields[0];
  entry.name = line.substr(begin);
  return parse_int64(fields[1], entry.offset) && parse_int64(fields[2], entry.tokens);
}

// documents.tsv is not checksummed, so every entry is checked against its split stream.
std::vector<DocumentEntry> read_documents(const fs::path& path, const std::map<std::string, TokenStream>& splits,
                                          const json& metadata, int64_t end_of_text) {
  require_dataset_file(path);
  const auto lines = split_lines(read_text_file(path));
  if (lines.empty() || lines[0] != "split\toffset\ttokens\tname") throw UserError(corrupted(path, "bad header"));
  std::vector<DocumentEntry> documents;
  std::map<std::string, int64_t> counts;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    DocumentEntry entry;
    const std::string where = "line " + std::to_string(i + 1);
    if (!parse_document_line(lines[i], entry) || !splits.count(entry.split)) {
      throw UserError(corrupted(path, where + " is malformed"));
    }
    const auto& stream = splits.at(entry.split);
    const auto end = entry.offset + entry.tokens;
    if (end >= stream.size() || stream[end] != end_of_text) {
      throw UserError(corrupted(path, where + " does not match " + entry.split + ".bin"));
    }
    ++counts[entry.split];
    documents.push_back(std::move(entry));
  }
  for (const auto& name : kSplitNames) {
    if (counts[name] != metadata.at("splits").at(name).at("documents").get<int64_t>()) {
      throw UserError(corrupted(path, "document count of " + name + " disagrees with metadata.json"));
    }
  }
  return documents;
}

// A shard stream's documents: the spans between end-of-text tokens (llm.c puts one before each
// document, nanoGPT after; either way a document ends where the next end-of-text stands).
std::vector<DocumentEntry> stream_documents(const std::string& split, const TokenStream& stream, int64_t end_of_text) {
  std::vector<DocumentEntry> documents;
  int64_t begin = 0;
  for (int64_t i = 0; i < stream.size(); ++i) {
    if (stream[i] != end_of_text) continue;
    if (i > begin) documents.push_back({split, begin, i - begin, split + "@" + std::to_string(begin)});
    begin = i + 1;
  }
  return documents;
}

}  // namespace

Dataset Dataset::load(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    throw UserError(dir.string() + ": dataset directory not found; prepare it with `extrap data`");
  }
  Dataset dataset;
  dataset.dir_ = dir;
  const fs::path metadata_path = dir / "metadata.json";
  require_dataset_file(metadata_path);
  dataset.metadata_ = read_json_file(metadata_path);
  validate_metadata(metadata_path, dataset.metadata_);
  dataset.tokenizer_ = load_tokenizer(dataset.metadata_.at("tokenizer"), dir, metadata_path);
  const int64_t vocab = dataset.tokenizer_->vocab_size(), end_of_text = dataset.tokenizer_->end_of_text();
  const json& splits = dataset.metadata_.at("splits");
  if (is_shards(dataset.metadata_)) {
    verify_checksum(metadata_path, dataset.metadata_.at("checksum").get<std::string>(), shards_checksum(splits));
    for (const auto& name : kSplitNames) {
      dataset.splits_[name] = open_shard_split(splits.at(name), dataset.layout(), metadata_path);
      if (name != "train") {
        const auto documents = stream_documents(name, dataset.splits_[name], end_of_text);
        dataset.documents_.insert(dataset.documents_.end(), documents.begin(), documents.end());
      }
    }
    return dataset;
  }
  const bool masked = is_masked(dataset.metadata_);
  verify_checksum(metadata_path, dataset.metadata_.at("checksum").get<std::string>(), combined_checksum(splits, masked));
  for (const auto& name : kSplitNames) {
    dataset.splits_[name] = read_split_stream(dir / (name + ".bin"), splits.at(name), vocab);
    if (masked) {
      dataset.masks_[name] = read_split_mask(dir / (name + ".mask"), splits.at(name).at("mask_checksum").get<std::string>(),
                                             dataset.splits_[name], end_of_text);
    }
  }
  dataset.documents_ = read_documents(dir / "documents.tsv", dataset.splits_, dataset.metadata_, end_of_text);
  return dataset;
}

std::string Dataset::layout() const { return is_shards(metadata_) ? metadata_.at("corpus").get<std::string>() : "extrap"; }

json Dataset::identity() const {
  return {{"path", dir_.string()},
          {"format", metadata_.at("format")},
          {"corpus", metadata_.value("corpus", "")},
          {"tokenizer", tokenizer_identity()},
          {"checksum", checksum()}};
}

json Dataset::text_identity() const {
  json identity = json::object();
  for (const char* key : {"corpus", "source", "seed", "val_fraction", "test_fraction", "task"}) {
    if (metadata_.contains(key)) identity[key] = metadata_.at(key);
  }
  if (is_shards(metadata_)) identity["checksum"] = checksum();
  return identity;
}

json Dataset::tokenizer_identity() const {
  const json& tokenizer = metadata_.at("tokenizer");
  json identity = {{"type", tokenizer.at("type")}, {"vocab_size", tokenizer.at("vocab_size")},
                   {"end_of_text", tokenizer.at("end_of_text")}};
  if (tokenizer.contains("checksum")) identity["checksum"] = tokenizer.at("checksum");
  return identity;
}

std::vector<DocumentEntry> Dataset::documents(const std::string& split) const {
  std::vector<DocumentEntry> selected;
  std::copy_if(documents_.begin(), documents_.end(), std::back_inserter(selected),
               [&](const DocumentEntry& d) { return d.split == split; });
  return selected;
}

const std::vector<uint8_t>& Dataset::mask(const std::string& name) const {
  static const std::vector<uint8_t> none;
  const auto it = masks_.find(name);
  return it == masks_.end() ? none : it->second;
}

const TokenStream& Dataset::split(const std::string& name) const {
  const auto it = splits_.find(name);
  if (it == splits_.end()) throw UserError("unknown split '" + name + "' (expected train, val or test)");
  return it->second;
}

}  // namespace extrap
