#include "eval/protocol.h"

#include <algorithm>

namespace extrap {

std::vector<EvalWindow> nonoverlap_windows(int64_t tokens, int64_t length) {
  std::vector<EvalWindow> windows;
  int64_t start = 0;
  for (; start + length <= tokens; start += length) windows.push_back({start, 0});
  const int64_t remaining = tokens - start;
  if (remaining > 0) windows.push_back({tokens - length, length - remaining});
  return windows;
}

std::vector<std::pair<int64_t, int64_t>> position_buckets(int64_t length) {
  std::vector<std::pair<int64_t, int64_t>> buckets{{0, std::min<int64_t>(1, length)}};
  for (int64_t begin = 1; begin < length; begin *= 2) buckets.emplace_back(begin, std::min(length, begin * 2));
  return buckets;
}

}  // namespace extrap
