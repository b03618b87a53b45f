#pragma once
// Which keys each block of queries computes scores for, shared by both attention kernels.
//
// A causal query i sees key j when j <= i and, with a window w, also i - j < w or j < sinks (the
// Λ-shaped mask: a recent window plus a few always-visible tokens at the start). Each query block
// computes only the key ranges some of its rows can see ("segments"): one segment [0, end) for
// full attention, or the window's range plus, separately, the sink tokens.
//
// With a merged score (several query/key pairs, a PassRule saying which scores each pair) each
// segment is further cut into spans whose keys have one pass for every row of the block, or whose
// rows differ ("mixed"). Only mixed spans, narrow bands along the rule's boundaries, need more than
// one pass.
//
// With documents (data.mask_documents) query i of batch row b also needs j >= start(b, i), the
// first token of its document. Keys before every row's first document start in a block are not
// planned at all, and a kernel that works per batch row drops those before its row's start.
#include <cstdint>
#include <vector>

#include "position/pass_rule.h"

namespace extrap {

struct KeyMask {
  int64_t window = 0;  // 0: every earlier key is visible
  int64_t sinks = 0;   // with a window: keys [0, sinks) stay visible to every later query
  bool visible(int64_t i, int64_t j) const {
    return j <= i && (window == 0 || i - j < window || j < sinks);
  }
};

// Per-row document starts in host memory, [batch, length] row-major (undefined: no documents).
// Along a row they never decrease.
struct DocumentStarts {
  const int64_t* data = nullptr;
  int64_t batch = 0, length = 0;
  bool defined() const { return data != nullptr; }
  const int64_t* row(int64_t b) const { return data + b * length; }
  // The first key that some row's query q_begin or later can see: the smallest start at q_begin.
  int64_t floor(int64_t q_begin) const;
};

struct KeySpan {
  int64_t begin, end;  // keys [begin, end)
  int64_t column;      // first score column of the span in the block's score tile
  int pass;            // the lowest pass of the span's pairs
  int last_pass;       // the highest: equal to `pass` unless rows differ (a mixed span)
  bool mixed() const { return last_pass != pass; }
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
  // Score columns visible to query i (q_begin <= i < q_end) whose document starts at key
  // first_key, as at most two [begin, end) ranges; returns how many were written.
  int visible_columns(int64_t i, const KeyMask& mask, int64_t out[2][2], int64_t first_key = 0) const;
  int64_t column_of(int64_t key) const;
  // The plan without keys [0, first_key): a prefix of its columns, the rest renumbered from 0.
  BlockPlan from_key(int64_t first_key) const;
};

// A block as one batch row computes it, for kernels that work a row at a time (the fused kernel).
// With documents, the keys before the row's first document start in the block belong to another
// document for all its queries: the row's tile leaves out those leading columns of the block (and
// of its bias), and each query sees keys from its own document's first one.
struct RowBlock {
  const BlockPlan* block;
  BlockPlan clipped;                    // with documents: the block from the row's first start
  int64_t skipped = 0;                  // leading columns of the block left out
  const int64_t* first_keys = nullptr;  // per query of the block; null: no documents
  const BlockPlan& plan() const { return first_keys ? clipped : *block; }
  int64_t first_key(int64_t r) const { return first_keys ? first_keys[r] : 0; }
};
RowBlock row_block(const BlockPlan& block, const DocumentStarts& documents, int64_t b);

// With documents, each block starts at its documents.floor.
std::vector<BlockPlan> plan_attention(int64_t length, int64_t block, const KeyMask& mask, const PassRule& rule = {},
                                      const DocumentStarts& documents = {});

}  // namespace extrap
