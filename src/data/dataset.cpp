#include "data/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <numeric>

#include "common/error.h"
#include "common/files.h"
#include "common/random.h"
#include "data/corpus.h"
#include "data/dataset_format.h"

namespace extrap {

using nlohmann::json;

namespace {

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
    throw UserError("unknown corpus '" + options.corpus + "' (expected brown, kjv, text, jsonl, code, llmc or nanogpt)");
  }
  const auto check_fraction = [](const char* name, double value) {
    if (!(value >= 0 && value < 1)) {
      throw UserError(std::string(name) + " must be in [0, 1), got " + std::to_string(value));
    }
  };
  if (options.tokenizer != "byte" && options.tokenizer != "sentencepiece") {
    throw UserError("--tokenizer " + options.tokenizer + ": expected byte or sentencepiece");
  }
  if (!options.tokenizer_model.empty() && options.tokenizer != "sentencepiece") {
    throw UserError("--tokenizer-model needs --tokenizer sentencepiece");
  }
  const int64_t vocab = options.sentencepiece.vocab_size;
  if (options.tokenizer == "sentencepiece" && (vocab < 16 || vocab > kMaxPreparedVocabulary)) {
    throw UserError("--vocab-size " + std::to_string(vocab) + ": expected 16 to " + std::to_string(kMaxPreparedVocabulary));
  }
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

// Names come from file names, which may hold tabs or newlines; the TSV must stay one line each.
std::string tsv_field(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return text;
}

SplitStream build_stream(const std::string& split, const std::vector<std::size_t>& indices,
                         const std::vector<RawDocument>& docs, const Tokenizer& tokenizer) {
  SplitStream stream;
  for (const auto index : indices) {
    const auto tokens = tokenizer.encode(docs[index].text);
    stream.documents.push_back({split, static_cast<int64_t>(stream.tokens.size()),
                                static_cast<int64_t>(tokens.size()), docs[index].name});
    stream.tokens.insert(stream.tokens.end(), tokens.begin(), tokens.end());
    stream.tokens.push_back(uint16_t(tokenizer.end_of_text()));
  }
  return stream;
}

// Trains a SentencePiece model on the train documents, or reads the given one.
std::string sentencepiece_model(const PrepareOptions& options, const std::vector<RawDocument>& docs,
                                const std::vector<std::size_t>& train) {
  if (!options.tokenizer_model.empty()) {
    if (!fs::is_regular_file(options.tokenizer_model)) {
      throw UserError(options.tokenizer_model.string() + ": tokenizer model not found");
    }
    return read_text_file(options.tokenizer_model);
  }
  std::vector<std::string> texts;
  for (const auto index : train) texts.push_back(docs[index].text);
  return train_sentencepiece(texts, options.sentencepiece);
}

// The metadata "tokenizer" entry of a SentencePiece dataset.
json sentencepiece_description(const PrepareOptions& options, const std::string& model, const Tokenizer& tokenizer) {
  json description = {{"type", "sentencepiece"},
                      {"model", kTokenizerModelFile},
                      {"checksum", fnv1a64_hex(model.data(), model.size())},
                      {"vocab_size", tokenizer.vocab_size()},
                      {"end_of_text", tokenizer.end_of_text()}};
  if (options.tokenizer_model.empty()) {
    description["trained"] = {{"on", "train split"},
                              {"model_type", options.sentencepiece.model_type},
                              {"vocab_size", options.sentencepiece.vocab_size},
                              {"byte_fallback", options.sentencepiece.byte_fallback},
                              {"max_sentences", options.sentencepiece.max_sentences},
                              {"seed", options.seed}};
  } else {
    description["given"] = fs::absolute(options.tokenizer_model).string();
  }
  return description;
}

// Unknown pieces lose their text: how many each split has and how many bytes they stand for.
json unknown_counts(const std::map<std::string, SplitStream>& streams, const std::vector<RawDocument>& docs,
                    const std::map<std::string, std::vector<std::size_t>>& assignment, const Tokenizer& tokenizer) {
  json counts = json::object();
  for (const auto& [name, stream] : streams) {
    int64_t text_bytes = 0;
    for (const auto index : assignment.at(name)) text_bytes += int64_t(docs[index].text.size());
    counts[name] = {{"text_bytes", text_bytes},
                    {"unknown_tokens", tokenizer.unknown_id() < 0 ? 0
                                                       : std::count(stream.tokens.begin(), stream.tokens.end(),
                                                                    uint16_t(tokenizer.unknown_id()))}};
  }
  return counts;
}

// Writes every file of a prepared dataset into dir; returns the metadata.
json write_dataset_files(const fs::path& dir, json description, const std::map<std::string, SplitStream>& streams,
                         const std::map<std::string, std::string>& files) {
  for (const auto& [name, contents] : files) write_file_atomic(dir / name, contents);
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
  if (!metadata.contains("tokenizer")) {
    metadata["tokenizer"] = {{"type", "byte"}, {"vocab_size", kByteVocabulary}, {"end_of_text", kEndOfText}};
  }
  const json split_text = metadata.value("split_text", json::object());
  for (const auto& [name, extra] : split_text.items()) splits[name].update(extra);
  metadata.erase("split_text");
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

// Builds a dataset directory under OUTPUT.tmp-<pid> with `fill`, then renames it to OUTPUT.
json write_directory_atomic(const fs::path& given_output, const std::function<json(const fs::path&)>& fill) {
  // A trailing slash would put the temporary directory inside the output.
  const fs::path output = given_output.has_filename() ? given_output : given_output.parent_path();
  fs::path temporary = output;
  temporary += ".tmp-" + std::to_string(::getpid());
  if (!output.parent_path().empty()) fs::create_directories(output.parent_path());
  fs::remove_all(temporary);
  fs::create_directory(temporary);
  try {
    const json metadata = fill(temporary);
    remove_previous_output(output);
    rename_durable(temporary, output);
    return metadata;
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
}

}  // namespace

std::string combined_checksum(const json& splits, bool masked) {
  std::string joined;
  for (const auto& name : kSplitNames) joined += splits.at(name).at("checksum").get<std::string>();
  for (const auto& name : kSplitNames) {
    if (masked) joined += splits.at(name).at("mask_checksum").get<std::string>();
  }
  return fnv1a64_hex(joined.data(), joined.size());
}

std::string shards_checksum(const json& splits) {
  std::string joined;
  for (const auto& name : kSplitNames) {
    for (const auto& file : splits.at(name).at("files")) joined += file.at("fingerprint").get<std::string>();
  }
  return fnv1a64_hex(joined.data(), joined.size());
}

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
  json description = {{"corpus", options.corpus},
                      {"source", options.input.string()},
                      {"seed", options.seed},
                      {"val_fraction", options.val_fraction},
                      {"test_fraction", options.test_fraction}};
  std::map<std::string, std::string> files;
  std::unique_ptr<Tokenizer> tokenizer = byte_tokenizer();
  if (options.tokenizer == "sentencepiece") {
    const std::string model = sentencepiece_model(options, docs, assignment.at("train"));
    tokenizer = sentencepiece_tokenizer(model, options.tokenizer_model.empty() ? "trained model" : options.tokenizer_model.string());
    if (tokenizer->vocab_size() > kMaxPreparedVocabulary) {
      throw UserError("tokenizer vocabulary " + std::to_string(tokenizer->vocab_size()) + " exceeds the " +
                      std::to_string(kMaxPreparedVocabulary) + " ids a prepared dataset stores");
    }
    description["tokenizer"] = sentencepiece_description(options, model, *tokenizer);
    files[kTokenizerModelFile] = model;
  }
  std::map<std::string, SplitStream> streams;
  for (const auto& [name, indices] : assignment) streams[name] = build_stream(name, indices, docs, *tokenizer);
  description["split_text"] = unknown_counts(streams, docs, assignment, *tokenizer);
  description.update(reader_parameters(options));
  return write_prepared_dataset(options.output, description, streams, files);
}

json write_prepared_dataset(const fs::path& output, json description, const std::map<std::string, SplitStream>& streams,
                            const std::map<std::string, std::string>& files) {
  return write_directory_atomic(
      output, [&](const fs::path& dir) { return write_dataset_files(dir, std::move(description), streams, files); });
}

json prepare_shard_dataset(const ShardOptions& options, const fs::path& output) {
  json metadata = describe_shards(options);  // every check happens before anything is written
  metadata["format"] = kShardsFormat;
  metadata["checksum"] = shards_checksum(metadata.at("splits"));
  metadata["created"] = utc_timestamp();
  return write_directory_atomic(output, [&](const fs::path& dir) {
    write_json_atomic(dir / "metadata.json", metadata);
    return metadata;
  });
}

}  // namespace extrap
