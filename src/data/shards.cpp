#include "data/shards.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

constexpr int64_t kGpt2Vocabulary = 50257;
constexpr int64_t kGpt2EndOfText = 50256;
constexpr int64_t kFingerprintBytes = 1 << 20;

struct ShardFormat {
  int32_t magic;
  int32_t version;
  int width;
};
constexpr ShardFormat kLlmcFormats[] = {{20240520, 1, 2}, {20240801, 7, 4}};

int32_t header_word(const MappedFile& file, int index) {
  int32_t word = 0;
  std::memcpy(&word, file.data() + 4 * index, 4);  // little-endian host
  return word;
}

// Checks an llm.c header against the file and returns the tokens it holds.
TokenSegment llmc_segment(const fs::path& path) {
  auto file = MappedFile::open(path);
  const std::string name = path.string();
  if (file->size() < kLlmcHeaderBytes) {
    throw UserError(name + ": " + std::to_string(file->size()) + " bytes, shorter than llm.c's 1024-byte header");
  }
  const int32_t magic = header_word(*file, 0), version = header_word(*file, 1), count = header_word(*file, 2);
  const auto* format = std::find_if(std::begin(kLlmcFormats), std::end(kLlmcFormats),
                                    [&](const ShardFormat& f) { return f.magic == magic; });
  if (format == std::end(kLlmcFormats)) {
    throw UserError(name + ": header magic " + std::to_string(magic) + " is not llm.c's 20240520 or 20240801");
  }
  if (version != format->version) {
    throw UserError(name + ": header version " + std::to_string(version) + " with magic " + std::to_string(magic) +
                    " (expected " + std::to_string(format->version) + ")");
  }
  const int64_t expected = kLlmcHeaderBytes + int64_t(count) * format->width;
  if (count < 0 || file->size() != expected) {
    throw UserError(name + ": header says " + std::to_string(count) + " tokens (" + std::to_string(expected) +
                    " bytes), the file has " + std::to_string(file->size()) + " bytes");
  }
  return mapped_segment(std::move(file), kLlmcHeaderBytes, format->width);
}

TokenSegment nanogpt_segment(const fs::path& path) {
  auto file = MappedFile::open(path);
  if (file->size() % 2 != 0) {
    throw UserError(path.string() + ": " + std::to_string(file->size()) + " bytes is odd; not a uint16 token file");
  }
  return mapped_segment(std::move(file), 0, 2);
}

TokenSegment open_segment(const std::string& layout, const fs::path& path) {
  return layout == "llmc" ? llmc_segment(path) : nanogpt_segment(path);
}

// FNV-1a 64 of the file size and its first and last MiB: cheap to recheck on every load.
std::string fingerprint(const MappedFile& file) {
  std::string sample = std::to_string(file.size()) + ":";
  const int64_t head = std::min(file.size(), kFingerprintBytes);
  const int64_t tail_from = std::max(head, file.size() - kFingerprintBytes);
  sample.append(reinterpret_cast<const char*>(file.data()), std::size_t(head));
  sample.append(reinterpret_cast<const char*>(file.data() + tail_from), std::size_t(file.size() - tail_from));
  return fnv1a64_hex(sample.data(), sample.size());
}

const MappedFile& mapped(const TokenSegment& segment) { return *static_cast<const MappedFile*>(segment.owner.get()); }

// Every token below the vocabulary; the first one that is not is named by file and index.
void check_tokens(const TokenSegment& segment, int64_t vocab_size) {
  for (int64_t i = 0; i < segment.count; ++i) {
    if (int64_t(segment.at(i)) >= vocab_size) {
      throw UserError(segment.source + ": token " + std::to_string(i) + " is " + std::to_string(segment.at(i)) +
                      ", outside the vocabulary of " + std::to_string(vocab_size));
    }
  }
}

std::vector<fs::path> matching_files(const fs::path& dir, const std::string& infix) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && entry.path().extension() == ".bin" && name.find(infix) != std::string::npos) {
      files.push_back(fs::absolute(entry.path()));
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// llm.c's scripts name shards <dataset>_train_000001.bin and <dataset>_val_000000.bin.
std::vector<fs::path> split_files(const ShardOptions& options, const std::string& split) {
  std::vector<fs::path> files;
  if (options.layout == "llmc") {
    files = matching_files(options.input, "_" + split + "_");
  } else if (fs::is_regular_file(options.input / (split + ".bin"))) {
    files = {fs::absolute(options.input / (split + ".bin"))};
  }
  if (files.empty()) {
    throw UserError(options.input.string() + ": no " + split + " shard (expected " +
                    (options.layout == "llmc" ? "*_" + split + "_*.bin" : split + ".bin") + ")");
  }
  return files;
}

// nanoGPT keeps no vocabulary beside its .bin files; ours is a small meta.json.
void read_nanogpt_meta(ShardOptions& options) {
  const fs::path meta = options.input / "meta.json";
  if (!fs::is_regular_file(meta)) return;
  const json value = read_json_file(meta);
  try {
    if (options.vocab_size == 0) options.vocab_size = value.at("vocab_size").get<int64_t>();
    if (options.end_of_text < 0) options.end_of_text = value.at("end_of_text").get<int64_t>();
  } catch (const json::exception&) {
    throw UserError(meta.string() + ": expected {\"vocab_size\": N, \"end_of_text\": ID}");
  }
}

void resolve_vocabulary(ShardOptions& options) {
  if (options.layout == "llmc") {
    if (options.vocab_size == 0) options.vocab_size = kGpt2Vocabulary;
    if (options.end_of_text < 0) options.end_of_text = kGpt2EndOfText;
  } else {
    read_nanogpt_meta(options);
    if (options.vocab_size == 0 || options.end_of_text < 0) {
      throw UserError(options.input.string() + ": nanoGPT .bin files carry no vocabulary; give --vocab-size and "
                      "--end-of-text or write meta.json beside them");
    }
  }
  if (options.vocab_size < 2 || options.end_of_text >= options.vocab_size) {
    throw UserError("--end-of-text " + std::to_string(options.end_of_text) + " must be below --vocab-size " +
                    std::to_string(options.vocab_size));
  }
}

json describe_split(const ShardOptions& options, const std::string& split) {
  json files = json::array();
  int64_t tokens = 0, documents = 0;
  for (const auto& path : split_files(options, split)) {
    const TokenSegment segment = open_segment(options.layout, path);
    check_tokens(segment, options.vocab_size);
    for (int64_t i = 0; i < segment.count; ++i) documents += int64_t(segment.at(i)) == options.end_of_text;
    files.push_back({{"path", path.string()}, {"bytes", mapped(segment).size()}, {"tokens", segment.count},
                     {"fingerprint", fingerprint(mapped(segment))}});
    tokens += segment.count;
  }
  return {{"files", files}, {"tokens", tokens}, {"end_of_text_tokens", documents}};
}

void write_tokens(const fs::path& path, const std::string& header, const std::vector<uint32_t>& tokens, int width) {
  std::string bytes = header;
  for (uint32_t token : tokens) {
    for (int b = 0; b < width; ++b) bytes += char((token >> (8 * b)) & 0xff);
  }
  write_file_atomic(path, bytes);
}

}  // namespace

json describe_shards(const ShardOptions& given) {
  ShardOptions options = given;
  if (!fs::is_directory(options.input)) throw UserError(options.input.string() + ": not a directory of shards");
  resolve_vocabulary(options);
  json tokenizer = {{"type", "external"}, {"vocab_size", options.vocab_size}, {"end_of_text", options.end_of_text}};
  if (!options.vocabulary.empty()) {
    if (!fs::is_regular_file(options.vocabulary)) throw UserError(options.vocabulary.string() + ": vocabulary file not found");
    tokenizer["vocabulary_file"] = fs::absolute(options.vocabulary).string();
  }
  json splits = {{"train", describe_split(options, "train")}, {"val", describe_split(options, "val")}};
  splits["test"] = splits["val"];
  return {{"corpus", options.layout}, {"source", fs::absolute(options.input).string()}, {"tokenizer", tokenizer},
          {"splits", splits}};
}

TokenStream open_shard_split(const json& split, const std::string& layout, const fs::path& metadata_path) {
  std::vector<TokenSegment> segments;
  for (const auto& file : split.at("files")) {
    const fs::path path = file.at("path").get<std::string>();
    if (!fs::is_regular_file(path)) {
      throw UserError(path.string() + ": shard missing (listed in " + metadata_path.string() + ")");
    }
    TokenSegment segment = open_segment(layout, path);
    if (mapped(segment).size() != file.at("bytes").get<int64_t>() ||
        fingerprint(mapped(segment)) != file.at("fingerprint").get<std::string>()) {
      throw UserError(path.string() + ": changed since `extrap data` described it in " + metadata_path.string() +
                      "; re-run `extrap data`");
    }
    segments.push_back(std::move(segment));
  }
  return TokenStream(std::move(segments));
}

void write_llmc_shard(const fs::path& path, const std::vector<uint32_t>& tokens, int version) {
  const auto* format = std::find_if(std::begin(kLlmcFormats), std::end(kLlmcFormats),
                                    [&](const ShardFormat& f) { return f.version == version; });
  if (format == std::end(kLlmcFormats)) throw UserError("llm.c shard version " + std::to_string(version) + " (expected 1 or 7)");
  std::vector<int32_t> header(256, 0);
  header[0] = format->magic;
  header[1] = format->version;
  header[2] = int32_t(tokens.size());
  write_tokens(path, std::string(reinterpret_cast<const char*>(header.data()), kLlmcHeaderBytes), tokens, format->width);
}

void write_nanogpt_bin(const fs::path& path, const std::vector<uint32_t>& tokens) { write_tokens(path, "", tokens, 2); }

}  // namespace extrap
