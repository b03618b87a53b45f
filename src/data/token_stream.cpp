#include "data/token_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace extrap {

std::shared_ptr<const MappedFile> MappedFile::open(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw UserError(path.string() + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = int64_t(info.st_size);
  if (file->size_ > 0) {
    void* data = ::mmap(nullptr, std::size_t(file->size_), PROT_READ, MAP_SHARED, fd, 0);
    if (data == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw UserError(path.string() + ": cannot map (" + std::strerror(error) + ")");
    }
    file->data_ = static_cast<const uint8_t*>(data);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), std::size_t(size_));
}

TokenSegment mapped_segment(std::shared_ptr<const MappedFile> file, int64_t offset, int width) {
  TokenSegment segment;
  segment.data = file->data() + offset;
  segment.count = (file->size() - offset) / width;
  segment.width = width;
  segment.source = file->path().string();
  segment.owner = std::move(file);
  return segment;
}

TokenStream::TokenStream(std::vector<TokenSegment> segments) : segments_(std::move(segments)) {
  for (const auto& segment : segments_) {
    starts_.push_back(size_);
    size_ += segment.count;
  }
}

TokenStream TokenStream::of(std::vector<uint16_t> tokens) {
  auto owned = std::make_shared<std::vector<uint16_t>>(std::move(tokens));
  TokenSegment segment;
  segment.data = reinterpret_cast<const uint8_t*>(owned->data());  // little-endian host
  segment.count = int64_t(owned->size());
  segment.source = "memory";
  segment.owner = std::move(owned);
  return TokenStream({segment});
}

const TokenSegment& TokenStream::segment_of(int64_t i, int64_t* inside) const {
  if (i < 0 || i >= size_) throw std::out_of_range("token index " + std::to_string(i) + " outside the stream");
  const auto s = std::size_t(std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin()) - 1;
  if (inside != nullptr) *inside = i - starts_[s];
  return segments_[s];
}

uint32_t TokenStream::operator[](int64_t i) const {
  if (segments_.size() == 1 && i >= 0 && i < size_) return segments_[0].at(i);
  int64_t inside = 0;
  const TokenSegment& segment = segment_of(i, &inside);
  return segment.at(inside);
}

void TokenStream::copy(int64_t begin, int64_t count, int64_t* out) const {
  int64_t inside = 0;
  while (count > 0) {
    const TokenSegment& segment = segment_of(begin, &inside);
    const int64_t n = std::min(count, segment.count - inside);
    for (int64_t k = 0; k < n; ++k) out[k] = segment.at(inside + k);
    out += n;
    begin += n;
    count -= n;
  }
}

std::vector<int64_t> TokenStream::slice(int64_t begin, int64_t count) const {
  std::vector<int64_t> tokens(std::size_t(std::max<int64_t>(count, 0)));
  copy(begin, count, tokens.data());
  return tokens;
}

uint32_t TokenStream::max_token() const {
  uint32_t largest = 0;
  for (const auto& segment : segments_) {
    for (int64_t i = 0; i < segment.count; ++i) largest = std::max(largest, segment.at(i));
  }
  return largest;
}

}  // namespace extrap
