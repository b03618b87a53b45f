#pragma once
// Token streams as the trainer and the evaluator read them: one or more arrays of little-endian
// uint16 or uint32 token ids, memory-mapped from files (prepared splits, llm.c or nanoGPT shards,
// read in place) or held in memory (generated data). Torch-free.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace extrap {

namespace fs = std::filesystem;

// A read-only memory map of a whole file (an empty file maps to no bytes).
class MappedFile {
 public:
  // Throws UserError naming the path when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const fs::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  const fs::path& path() const { return path_; }

 private:
  MappedFile() = default;
  fs::path path_;
  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
};

// `count` tokens of `width` bytes (2 or 4) at `data`, kept alive by `owner`; `source` names where
// they come from in error messages.
struct TokenSegment {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  int64_t count = 0;
  int width = 2;
  std::string source;

  uint32_t at(int64_t i) const {
    const uint8_t* p = data + i * width;
    uint32_t value = uint32_t(p[0]) | uint32_t(p[1]) << 8;
    if (width == 4) value |= uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    return value;
  }
};

// The tokens of a mapped file from byte `offset` on (a shard header comes first).
TokenSegment mapped_segment(std::shared_ptr<const MappedFile> file, int64_t offset, int width);

// One logical stream over its segments in order.
class TokenStream {
 public:
  TokenStream() = default;
  explicit TokenStream(std::vector<TokenSegment> segments);
  // A stream held in memory (generated data, tests).
  static TokenStream of(std::vector<uint16_t> tokens);

  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint32_t operator[](int64_t i) const;
  // Tokens [begin, begin + count) into out; the range may span segments.
  void copy(int64_t begin, int64_t count, int64_t* out) const;
  std::vector<int64_t> slice(int64_t begin, int64_t count) const;
  // The largest token id (a scan of every token).
  uint32_t max_token() const;
  // The segment holding token i and i's index inside it (for error messages).
  const TokenSegment& segment_of(int64_t i, int64_t* inside = nullptr) const;
  const std::vector<TokenSegment>& segments() const { return segments_; }

 private:
  std::vector<TokenSegment> segments_;
  std::vector<int64_t> starts_;  // starts_[s]: index of segment s's first token
  int64_t size_ = 0;
};

}  // namespace extrap
