#pragma once
// Evaluation protocols: which windows are run and which of their tokens are scored.
#include <cstdint>
#include <vector>

namespace extrap {

// A window feeds inputs stream[start, start + length) and scores the predictions of
// stream[start + 1 + p] for window positions p >= score_from.
struct EvalWindow {
  int64_t start = 0;
  int64_t score_from = 0;
};

// `nonoverlap`: consecutive windows of `length` over the first `tokens` targets. When `length`
// does not divide `tokens`, a last window ends exactly at the end and scores only the targets not
// yet scored, so every length scores exactly the same `tokens` targets, each once.
// Requires tokens >= length.
std::vector<EvalWindow> nonoverlap_windows(int64_t tokens, int64_t length);

// Log-spaced position buckets [0,1) [1,2) [2,4) [4,8) ... covering 0..length-1; each entry is the
// bucket's [begin, end).
std::vector<std::pair<int64_t, int64_t>> position_buckets(int64_t length);

}  // namespace extrap
