#pragma once
// How a merged-score scheme's passes divide the score matrix (torch-free: the attention planner and
// the schemes both read it).
#include <cstdint>

namespace extrap {

// Which score pass scores key j for query i (token indices in the window). Pass 0 is the plain
// query/key pair; merged-score schemes add pairs (QueryKey::far_passes) and this rule:
//   far_from > 0: pass 1 where i - j >= far_from (ReRoPE, Self-Extend, STRING), else pass 0;
//   chunk > 0:    pass 0 in i's own chunk of `chunk` tokens, 1 in the chunk before it, 2 in every
//                 earlier chunk (Dual Chunk Attention).
// Both rules give each row contiguous key ranges per pass, the farthest keys the highest pass: row
// i uses pass >= p exactly for keys j < boundary(i, p), and boundaries never decrease with i.
constexpr int kMaxPasses = 3;

struct PassRule {
  int64_t far_from = 0;
  int64_t chunk = 0;
  int passes() const { return chunk > 0 ? 3 : far_from > 0 ? 2 : 1; }
  int64_t boundary(int64_t i, int p) const;  // 1 <= p < passes()
  int pass(int64_t i, int64_t j) const;
};

}  // namespace extrap
