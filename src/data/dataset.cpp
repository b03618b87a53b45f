#include "data/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/files.h"
#include "common/random.h"
#include "data/corpus.h"

namespace extrap {

namespace {

using nlohmann::json;

constexpr const char* kFormat = "extrap.dataset/1";
// Adds per-token loss masks (task datasets). Text corpora are still written as /1, which every
// reader reads; a /1 reader refuses /2 rather than train on the prompts of a task.
constexpr const char* kMaskedFormat = "extrap.dataset/2";
const std::vector<std::string> kSplitNames = {"train", "val", "test"};

std::string corrupted(const fs::path& path, const std::string& problem) {
  return path.string() + ": " + problem + "; the dataset is corrupted, re-run `extrap data`";
}

// ---- Splitting ------------------------------------------------------------------------------

std::vector<std::size_t> shuffled_indices(std::size_t n, uint64_t seed) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(seed);
  // Fisher-Yates; the modulo bias (n / 2^64) is negligible.
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.next() % i]);
  return order;
}

// A held-out split gets at least one document whenever it is requested and the corpus is big
// enough for train, val and test to each have one.
std::size_t held_out_count(std::size_t n, double fraction) {
  auto count = static_cast<std::size_t>(std::llround(static_cast<double>(n) * fraction));
  if (fraction > 0 && n >= 3) count = std::max<std::size_t>(count, 1);
  return count;
}

// Document indices per split (train, val, test), each in corpus order.
std::map<std::string, std::vector<std::size_t>> assign_splits(std::size_t n, const PrepareOptions& options) {
  const std::size_t test_count = held_out_count(n, options.test_fraction);
  const std::size_t val_count = held_out_count(n, options.val_fraction);
  if (test_count + val_count >= n) {
    throw UserError(options.input.string() + ": " + std::to_string(n) +
                    " documents are too few to hold out val and test and still train");
  }
  const auto order = shuffled_indices(n, options.seed);
  std::map<std::string, std::vector<std::size_t>> splits;
  splits["test"].assign(order.begin(), order.begin() + test_count);
  splits["val"].assign(order.begin() + test_count, order.begin() + test_count + val_count);
  splits["train"].assign(order.begin() + test_count + val_count, order.end());
  for (auto& [name, indices] : splits) std::sort(indices.begin(), indices.end());
  return splits;
}

void validate_options(const PrepareOptions& options) {
  const std::vector<std::string> corpora = {"brown", "kjv", "text", "jsonl", "code"};
  if (std::find(corpora.begin(), corpora.end(), options.corpus) == corpora.end()) {
    throw UserError("unknown corpus '" + options.corpus + "' (expected brown, kjv, text, jsonl or code)");
  }
  const auto check_fraction = [](const char* name, double value) {
    if (!(value >= 0 && value < 1)) {
      throw UserError(std::string(name) + " must be in [0, 1), got " + std::to_string(value));
    }
  };
  check_fraction("val_fraction", options.val_fraction);
  check_fraction("test_fraction", options.test_fraction);
  if (options.val_fraction + options.test_fraction >= 1) {
    throw UserError("val_fraction + test_fraction must be below 1 to leave documents for training");
  }
}

std::vector<RawDocument> read_corpus(const PrepareOptions& options) {
  if (options.corpus == "brown") return read_brown(options.input);
  if (options.corpus == "kjv") return read_kjv(options.input);
  if (options.corpus == "jsonl") return read_jsonl(options.input, options.text_field);
  if (options.corpus == "code") return read_code(options.input, options.extensions);
  return read_text(options.input);
}

// The reader's own parameters, recorded beside the corpus name: they decide what text was read.
json reader_parameters(const PrepareOptions& options) {
  if (options.corpus == "jsonl") return {{"text_field", options.text_field}};
  if (options.corpus == "code") return {{"extensions", options.extensions}};
  return json::object();
}

// ---- Files ----------------------------------------------------------------------------------

std::string to_little_endian(const std::vector<uint16_t>& tokens) {
  std::string bytes(tokens.size() * 2, '\0');
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    bytes[2 * i] = static_cast<char>(tokens[i] & 0xff);
    bytes[2 * i + 1] = static_cast<char>(tokens[i] >> 8);
  }
  return bytes;
}

std::vector<uint16_t> from_little_endian(const std::string& bytes) {
  std::vector<uint16_t> tokens(bytes.size() / 2);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<uint16_t>(static_cast<unsigned char>(bytes[2 * i]) |
                                      static_cast<unsigned char>(bytes[2 * i + 1]) << 8);
  }
  return tokens;
}

// Over the split checksums, then (format /2) the mask checksums, each in the order train, val, test.
std::string combined_checksum(const json& splits, bool masked) {
  std::string joined;
  for (const auto& name : kSplitNames) joined += splits.at(name).at("checksum").get<std::string>();
  for (const auto& name : kSplitNames) {
    if (masked) joined += splits.at(name).at("mask_checksum").get<std::string>();
  }
  return fnv1a64_hex(joined.data(), joined.size());
}

// Names come from file names, which may hold tabs or newlines; the TSV must stay one line each.
std::string tsv_field(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return text;
}

SplitStream build_stream(const std::string& split, const std::vector<std::size_t>& indices,
                         const std::vector<RawDocument>& docs) {
  SplitStream stream;
  for (const auto index : indices) {
    const auto tokens = encode_bytes(docs[index].text);
    stream.documents.push_back({split, static_cast<int64_t>(stream.tokens.size()),
                                static_cast<int64_t>(tokens.size()), docs[index].name});
    stream.tokens.insert(stream.tokens.end(), tokens.begin(), tokens.end());
    stream.tokens.push_back(kEndOfText);
  }
  return stream;
}

// Writes every file of a prepared dataset into dir; returns the metadata.
json write_dataset_files(const fs::path& dir, json description, const std::map<std::string, SplitStream>& streams) {
  const bool masked = !streams.at("train").mask.empty();
  json splits = json::object();
  std::string documents_tsv = "split\toffset\ttokens\tname\n";
  for (const auto& name : kSplitNames) {
    const SplitStream& stream = streams.at(name);
    const std::string bytes = to_little_endian(stream.tokens);
    write_file_atomic(dir / (name + ".bin"), bytes);
    splits[name] = {{"documents", stream.documents.size()},
                    {"tokens", stream.tokens.size()},
                    {"checksum", fnv1a64_hex(bytes.data(), bytes.size())}};
    if (masked) {
      const std::string mask(stream.mask.begin(), stream.mask.end());
      write_file_atomic(dir / (name + ".mask"), mask);
      splits[name]["mask_checksum"] = fnv1a64_hex(mask.data(), mask.size());
    }
    for (const auto& doc : stream.documents) {
      documents_tsv += doc.split + "\t" + std::to_string(doc.offset) + "\t" + std::to_string(doc.tokens) + "\t" +
                       tsv_field(doc.name) + "\n";
    }
  }
  write_file_atomic(dir / "documents.tsv", documents_tsv);
  json& metadata = description;
  metadata["format"] = masked ? kMaskedFormat : kFormat;
  metadata["tokenizer"] = {{"type", "byte"}, {"vocab_size", kByteVocabulary}, {"end_of_text", kEndOfText}};
  metadata["splits"] = splits;
  metadata["checksum"] = combined_checksum(splits, masked);
  metadata["created"] = utc_timestamp();
  write_json_atomic(dir / "metadata.json", metadata);
  return metadata;
}

// Replacing the output deletes it, so only a previous dataset (or an empty directory) may go.
void remove_previous_output(const fs::path& output) {
  if (!fs::exists(output)) return;
  const bool replaceable =
      fs::is_directory(output) && (fs::is_empty(output) || fs::exists(output / "metadata.json"));
  if (!replaceable) {
    throw UserError(output.string() + ": exists and is not a prepared dataset; refusing to replace it");
  }
  fs::remove_all(output);
}

// ---- Loading --------------------------------------------------------------------------------

std::string json_error_text(const json::exception& e) {
  const std::string what = e.what();  // "[json.exception.type_error.302] type must be ..."
  const auto pos = what.find("] ");
  return pos == std::string::npos ? what : what.substr(pos + 2);
}

bool is_masked(const json& metadata) { return metadata.at("format") == kMaskedFormat; }

void validate_metadata(const fs::path& path, const json& metadata) {
  if (!metadata.is_object() || !metadata.contains("format") ||
      (metadata["format"] != kFormat && metadata["format"] != kMaskedFormat)) {
    throw UserError(path.string() + ": not an " + kFormat + " or " + kMaskedFormat + " dataset; re-run `extrap data`");
  }
  try {
    const json& tokenizer = metadata.at("tokenizer");
    if (tokenizer.at("type") != "byte" || tokenizer.at("vocab_size") != kByteVocabulary ||
        tokenizer.at("end_of_text") != kEndOfText) {
      throw UserError(path.string() + ": unsupported tokenizer " + tokenizer.dump());
    }
    for (const auto& name : kSplitNames) {
      const json& split = metadata.at("splits").at(name);
      if (split.at("tokens").get<int64_t>() < 0 || split.at("documents").get<int64_t>() < 0) {
        throw UserError(path.string() + ": negative count in split " + name);
      }
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

std::vector<uint16_t> read_split_stream(const fs::path& path, const json& split_metadata) {
  require_dataset_file(path);
  const std::string bytes = read_text_file(path);
  if (bytes.size() % 2 != 0) {
    throw UserError(corrupted(path, "size " + std::to_string(bytes.size()) + " bytes is odd"));
  }
  const auto expected_tokens = split_metadata.at("tokens").get<int64_t>();
  if (static_cast<int64_t>(bytes.size() / 2) != expected_tokens) {
    throw UserError(corrupted(path, "holds " + std::to_string(bytes.size() / 2) + " tokens, metadata.json says " +
                                        std::to_string(expected_tokens)));
  }
  verify_checksum(path, split_metadata.at("checksum").get<std::string>(), fnv1a64_hex(bytes.data(), bytes.size()));
  auto tokens = from_little_endian(bytes);
  if (std::any_of(tokens.begin(), tokens.end(), [](uint16_t t) { return t > kEndOfText; })) {
    throw UserError(corrupted(path, "token outside the byte vocabulary"));
  }
  return tokens;
}

// A loss mask: one byte 0 or 1 per token of its stream, never 1 on an end-of-text token.
std::vector<uint8_t> read_split_mask(const fs::path& path, const std::string& expected_checksum,
                                     const std::vector<uint16_t>& tokens) {
  require_dataset_file(path);
  const std::string bytes = read_text_file(path);
  if (bytes.size() != tokens.size()) {
    throw UserError(corrupted(path, "holds " + std::to_string(bytes.size()) + " bytes for " +
                                        std::to_string(tokens.size()) + " tokens"));
  }
  verify_checksum(path, expected_checksum, fnv1a64_hex(bytes.data(), bytes.size()));
  std::vector<uint8_t> mask(bytes.begin(), bytes.end());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] > 1 || (mask[i] == 1 && tokens[i] == kEndOfText)) {
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
std::vector<DocumentEntry> read_documents(const fs::path& path, const std::map<std::string, std::vector<uint16_t>>& splits,
                                          const json& metadata) {
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
    if (end >= static_cast<int64_t>(stream.size()) || stream[end] != kEndOfText) {
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

}  // namespace

std::vector<uint16_t> encode_bytes(const std::string& text) {
  std::vector<uint16_t> tokens(text.size());
  std::transform(text.begin(), text.end(), tokens.begin(), [](char c) { return static_cast<unsigned char>(c); });
  return tokens;
}

json prepare_dataset(const PrepareOptions& options) {
  validate_options(options);
  auto docs = read_corpus(options);
  docs.erase(std::remove_if(docs.begin(), docs.end(), [](const RawDocument& d) { return d.text.empty(); }), docs.end());
  const auto assignment = assign_splits(docs.size(), options);
  std::map<std::string, SplitStream> streams;
  for (const auto& [name, indices] : assignment) streams[name] = build_stream(name, indices, docs);
  json description = {{"corpus", options.corpus},
                      {"source", options.input.string()},
                      {"seed", options.seed},
                      {"val_fraction", options.val_fraction},
                      {"test_fraction", options.test_fraction}};
  description.update(reader_parameters(options));
  return write_prepared_dataset(options.output, std::move(description), streams);
}

json write_prepared_dataset(const fs::path& given_output, json description,
                            const std::map<std::string, SplitStream>& streams) {
  // A trailing slash would put the temporary directory inside the output.
  const fs::path output = given_output.has_filename() ? given_output : given_output.parent_path();
  fs::path temporary = output;
  temporary += ".tmp-" + std::to_string(::getpid());
  if (!output.parent_path().empty()) fs::create_directories(output.parent_path());
  fs::remove_all(temporary);
  fs::create_directory(temporary);
  try {
    const json metadata = write_dataset_files(temporary, std::move(description), streams);
    remove_previous_output(output);
    rename_durable(temporary, output);
    return metadata;
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
}

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
  const json& splits = dataset.metadata_.at("splits");
  const bool masked = is_masked(dataset.metadata_);
  verify_checksum(metadata_path, dataset.metadata_.at("checksum").get<std::string>(), combined_checksum(splits, masked));
  for (const auto& name : kSplitNames) {
    dataset.splits_[name] = read_split_stream(dir / (name + ".bin"), splits.at(name));
    if (masked) {
      dataset.masks_[name] = read_split_mask(dir / (name + ".mask"), splits.at(name).at("mask_checksum").get<std::string>(),
                                             dataset.splits_[name]);
    }
  }
  dataset.documents_ = read_documents(dir / "documents.tsv", dataset.splits_, dataset.metadata_);
  return dataset;
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

const std::vector<uint16_t>& Dataset::split(const std::string& name) const {
  const auto it = splits_.find(name);
  if (it == splits_.end()) throw UserError("unknown split '" + name + "' (expected train, val or test)");
  return it->second;
}

}  // namespace extrap
