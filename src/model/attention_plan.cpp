#include "model/attention_plan.h"

#include <algorithm>

namespace extrap {
namespace {

std::vector<KeySegment> block_segments(int64_t q_begin, int64_t q_end, const KeyMask& mask) {
  if (mask.window == 0) return {{0, q_end, 0}};
  const int64_t window_begin = std::max<int64_t>(0, q_begin - mask.window + 1);
  const int64_t sink_end = std::min(mask.sinks, q_end);
  if (sink_end >= window_begin) return {{0, q_end, 0}};
  std::vector<KeySegment> segments;
  if (sink_end > 0) segments.push_back({0, sink_end, 0});
  segments.push_back({window_begin, q_end, sink_end});
  return segments;
}

// Cuts `segment` where the pass of the block's first or last row changes. Between two cuts both are
// constant, and every row in between lies within them (passes never decrease with i).
void add_spans(const KeySegment& segment, int64_t q_begin, int64_t q_end, const PassRule& rule,
               std::vector<KeySpan>& spans) {
  std::vector<int64_t> cuts{segment.begin, segment.end};
  for (int p = 1; p < rule.passes(); ++p) {
    for (int64_t row : {q_begin, q_end - 1}) cuts.push_back(std::clamp(rule.boundary(row, p), segment.begin, segment.end));
  }
  std::sort(cuts.begin(), cuts.end());
  for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
    const int64_t begin = cuts[c], end = cuts[c + 1];
    if (end == begin) continue;
    spans.push_back({begin, end, segment.column + (begin - segment.begin), rule.pass(q_begin, begin),
                     rule.pass(q_end - 1, begin)});
  }
}

}  // namespace

int64_t BlockPlan::column_of(int64_t key) const {
  for (const auto& s : segments) {
    if (key >= s.begin && key < s.end) return s.column + (key - s.begin);
  }
  return -1;
}

int BlockPlan::visible_columns(int64_t i, const KeyMask& mask, int64_t out[2][2], int64_t first_key) const {
  // Visible keys: [lo, i] plus, with a window, the sinks [first_key, min(sinks, lo)), where lo is
  // the window's first key or the document's. Both ranges lie inside one segment each (segments
  // were built from the same bounds), so they map to column ranges.
  const int64_t lo = std::max(first_key, mask.window == 0 ? 0 : std::max<int64_t>(0, i - mask.window + 1));
  int count = 0;
  const int64_t sink_end = std::min(mask.sinks, lo);
  if (mask.window > 0 && sink_end > first_key) {
    out[count][0] = column_of(first_key);
    out[count][1] = out[count][0] + (sink_end - first_key);
    ++count;
  }
  out[count][0] = column_of(lo);
  out[count][1] = out[count][0] + (i + 1 - lo);
  return count + 1;
}

BlockPlan BlockPlan::from_key(int64_t first_key) const {
  BlockPlan plan{q_begin, q_end, {}, {}, 0};
  for (const auto& segment : segments) {
    const int64_t begin = std::max(segment.begin, first_key);
    if (begin >= segment.end) continue;
    plan.segments.push_back({begin, segment.end, plan.columns});
    plan.columns += segment.end - begin;
  }
  const int64_t dropped = columns - plan.columns;  // keys before first_key come first
  for (const auto& span : spans) {
    const int64_t begin = std::max(span.begin, first_key);
    if (begin < span.end) plan.spans.push_back({begin, span.end, span.column + (begin - span.begin) - dropped, span.pass,
                                           span.last_pass});
  }
  return plan;
}

RowBlock row_block(const BlockPlan& block, const DocumentStarts& documents, int64_t b) {
  if (!documents.defined()) return {&block, {}, 0, nullptr};
  const int64_t* first_keys = documents.row(b) + block.q_begin;
  BlockPlan clipped = block.from_key(first_keys[0]);
  const int64_t skipped = block.columns - clipped.columns;
  return {&block, std::move(clipped), skipped, first_keys};
}

int64_t DocumentStarts::floor(int64_t q_begin) const {
  int64_t first = row(0)[q_begin];
  for (int64_t b = 1; b < batch; ++b) first = std::min(first, row(b)[q_begin]);
  return first;
}

std::vector<BlockPlan> plan_attention(int64_t length, int64_t block, const KeyMask& mask, const PassRule& rule,
                                      const DocumentStarts& documents) {
  std::vector<BlockPlan> plans;
  for (int64_t q_begin = 0; q_begin < length; q_begin += block) {
    BlockPlan plan{q_begin, std::min(length, q_begin + block), {}, {}, 0};
    plan.segments = block_segments(plan.q_begin, plan.q_end, mask);
    for (const auto& segment : plan.segments) {
      add_spans(segment, plan.q_begin, plan.q_end, rule, plan.spans);
      plan.columns += segment.end - segment.begin;
    }
    plans.push_back(documents.defined() ? plan.from_key(documents.floor(q_begin)) : std::move(plan));
  }
  return plans;
}

}  // namespace extrap
