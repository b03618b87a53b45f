#pragma once
// Which keys each block of queries computes scores for, shared by both attention kernels.
//
// A causal query i sees key j when j <= i and, with a window w, also i - j < w or j < sinks (the
// Λ-shaped mask: a recent window plus a few always-visible tokens at the start). Each query block
// computes only the key ranges some of its rows can see ("segments"): one segment [0, end) for
// full attention, or the window's range plus, separately, the sink tokens.
//
// With a two-pass score (ReRoPE family: near pair for i - j < far_from, far pair otherwise) each
// segment is further cut into spans whose keys are near for every row of the block, far for every
// row, or mixed. Only mixed spans, at most one block wide, need both passes.
#include <cstdint>
#include <vector>

namespace extrap {

struct KeyMask {
  int64_t window = 0;  // 0: every earlier key is visible
  int64_t sinks = 0;   // with a window: keys [0, sinks) stay visible to every later query
  bool visible(int64_t i, int64_t j) const {
    return j <= i && (window == 0 || i - j < window || j < sinks);
  }
};

enum class Pass { kNear, kFar, kMixed };

struct KeySpan {
  int64_t begin, end;  // keys [begin, end)
  int64_t column;      // first score column of the span in the block's score tile
  Pass pass;
};

struct KeySegment {
  int64_t begin, end, column;  // contiguous keys and their first score column
};

struct BlockPlan {
  int64_t q_begin, q_end;            // query rows [q_begin, q_end)
  std::vector<KeySegment> segments;  // in key order; columns are the segments concatenated
  std::vector<KeySpan> spans;        // the segments cut by pass, in the same order
  int64_t columns = 0;               // width of the score tile
  int64_t rows() const { return q_end - q_begin; }
  // Score columns visible to query i (q_begin <= i < q_end), as at most two [begin, end) ranges;
  // returns how many were written.
  int visible_columns(int64_t i, const KeyMask& mask, int64_t out[2][2]) const;
  int64_t column_of(int64_t key) const;
};

// far_from = 0: a single pass.
std::vector<BlockPlan> plan_attention(int64_t length, int64_t block, const KeyMask& mask, int64_t far_from);

}  // namespace extrap
