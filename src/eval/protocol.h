#pragma once
// Evaluation protocols: which windows are run and which of their targets are scored. Pure,
// torch-free functions; docs/results.md gives every protocol's exact definition.
//
// Conventions. `stream` is a split's token stream. A window of `length` L has L inputs and L
// targets: window token i (i = 0..L) is stream[stream_index(window, i)], and window position p
// (p = 0..L-1) feeds tokens 0..p and predicts token p + 1 (so it has p + 1 tokens of context).
// For contiguous windows, "target t" is the prediction of stream[t + 1], i.e. position p of a
// window starting at `start` is target start + p.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

struct EvalWindow {
  int64_t start = 0;        // stream index of window token 0
  int64_t score_from = 0;   // positions p >= score_from are scored
  int64_t copy_offset = 0;  // 0: contiguous; h > 0: token i is stream[start + i % h] (a segment and its copies)
};

// Stream index of window token i (0 <= i <= length).
inline int64_t stream_index(const EvalWindow& window, int64_t i) {
  return window.start + (window.copy_offset > 0 ? i % window.copy_offset : i);
}

// A half-open range [begin, end) of stream indices.
struct StreamRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// ---- Window generators (one length each) ------------------------------------------------------

// `nonoverlap`: consecutive windows of `length` over the first `tokens` targets. When `length`
// does not divide `tokens`, a last window ends exactly at the end and scores only the targets not
// yet scored, so every length scores exactly the same `tokens` targets, each once.
// Requires tokens >= length.
std::vector<EvalWindow> nonoverlap_windows(int64_t tokens, int64_t length);

// `sliding`: windows start at 0, stride, 2*stride, ... while they fit in the first `tokens`
// targets; if the last of them does not end at `tokens`, one more window ends exactly there. Each
// window scores only the targets that no earlier window scored, so the first window scores its
// last `stride` positions (targets length - stride .. length - 1; earlier targets are never
// scored), every later target is scored exactly once, and every scored target has at least
// length - stride + 1 tokens of context. Requires tokens >= length and 1 <= stride <= length.
std::vector<EvalWindow> sliding_windows(int64_t tokens, int64_t length, int64_t stride);
// floor(length / 2), at least 1: the stride when none is given.
inline int64_t default_stride(int64_t length) { return std::max<int64_t>(1, length / 2); }

// `suffix` (fixed targets, growing context): for each sample, the window whose L + 1 tokens are
// the sample's last L + 1 tokens, scoring only its last `targets` positions. Every length scores
// the same targets (the last `targets` tokens of every sample). Requires
// sample.size() >= length + 1 and 1 <= targets <= length.
std::vector<EvalWindow> suffix_windows(const std::vector<StreamRange>& samples, int64_t length, int64_t targets);
// The documents with at least `min_tokens` tokens, in order.
std::vector<StreamRange> suffix_document_samples(const std::vector<StreamRange>& documents, int64_t min_tokens);
// Consecutive chunks [k * sample_tokens, (k + 1) * sample_tokens) of a stream of `stream_tokens`.
std::vector<StreamRange> suffix_stream_samples(int64_t stream_tokens, int64_t sample_tokens);

// `repeated`: window k is the natural segment stream[k*h, (k+1)*h), h = repeated_copy_offset(L),
// followed by exact copies of itself up to L + 1 tokens (token i = stream[k*h + i % h]); all L
// positions are scored. Windows are added until at least `max_targets` targets are scored or the
// stream has no further whole segment. Empty when stream_tokens < h.
std::vector<EvalWindow> repeated_windows(int64_t stream_tokens, int64_t length, int64_t max_targets);
// h = ceil(L / 2): the copy starts at window token h, and repeats token i - h for every i >= h.
inline int64_t repeated_copy_offset(int64_t length) { return (length + 1) / 2; }

// Log-spaced position buckets [0,1) [1,2) [2,4) [4,8) ... covering 0..length-1; each entry is the
// bucket's [begin, end).
std::vector<std::pair<int64_t, int64_t>> position_buckets(int64_t length);

// ---- Protocols resolved for one evaluation ----------------------------------------------------

enum class ProtocolKind { kNonoverlap, kSliding, kSuffix, kRepeated };
// Where the suffix protocol takes its samples: whole documents, or consecutive stream chunks.
enum class SuffixSource { kDocuments, kStream };

inline constexpr const char* kProtocolNames = "nonoverlap, sliding, suffix or repeated";
// The name in --protocol and in results documents ("nonoverlap", ...).
const char* protocol_name(ProtocolKind kind);
const char* suffix_source_name(SuffixSource source);

// Splits "nonoverlap,repeated" into protocols; throws UserError on an unknown, empty or repeated name.
std::vector<ProtocolKind> parse_protocol_names(const std::string& text);
// "documents" or "stream"; throws UserError naming --suffix-source otherwise.
SuffixSource parse_suffix_source(const std::string& name);

// Options of the protocols that have some (the CLI flags).
struct ProtocolParams {
  int64_t stride = 0;          // sliding; 0: default_stride(length) at each length
  int64_t suffix_targets = 0;  // suffix K; 0: the run's training length
  std::optional<SuffixSource> suffix_source;  // suffix; unset: documents
};

// What the protocols need to know about the evaluated split.
struct SplitInfo {
  std::string name;                    // train | val | test
  int64_t tokens = 0;                  // tokens in the split stream
  std::vector<StreamRange> documents;  // each document's tokens, without its end-of-text token
  std::vector<std::string> document_names;  // optional, for messages: one per document
};

// One protocol with every parameter resolved (the suffix samples are chosen once for all lengths).
struct Protocol {
  ProtocolKind kind = ProtocolKind::kNonoverlap;
  std::string split;         // the split's name and size (for messages and repeated segments)
  int64_t split_tokens = 0;
  int64_t max_tokens = 0;
  int64_t range_tokens = 0;  // nonoverlap, sliding: N = min(max_tokens, split tokens - 1) targets in range
  int64_t stride = 0;        // sliding: as given (0: default_stride(length))
  int64_t suffix_targets = 0;             // suffix: K
  SuffixSource suffix_source = SuffixSource::kDocuments;  // suffix
  int64_t sample_tokens = 0;              // suffix: max length + 1, the minimum sample size
  int64_t available_samples = 0;          // suffix: samples at least that long
  std::vector<StreamRange> samples;       // suffix: the samples used
  const char* name() const { return protocol_name(kind); }
  // The `protocols[]` entry of the results document.
  nlohmann::json to_json() const;
};

// Validates `params` against the protocols and lengths and resolves each protocol. Throws a
// one-line UserError for a protocol given twice, an option given to no protocol that takes it, a
// stride outside [1, length], a suffix target count above the shortest length, or no sample long
// enough for the suffix protocol.
std::vector<Protocol> make_protocols(const std::vector<ProtocolKind>& kinds, const ProtocolParams& params,
                                     const std::vector<int64_t>& lengths, int64_t max_tokens, int64_t train_length,
                                     const SplitInfo& split);

// Window positions [begin, end) reported as a separate part of a result (repeated: natural, copy).
struct PositionPart {
  std::string name;
  int64_t begin = 0;
  int64_t end = 0;
};

// Everything about one (protocol, length): the windows, the targets scored and the
// protocol-specific fields of its result row.
struct LengthPlan {
  int64_t length = 0;
  std::vector<EvalWindow> windows;
  int64_t tokens = 0;               // targets scored
  nlohmann::json fields = nlohmann::json::object();  // e.g. {"stride": 256, "first_scored_target": 256}
  std::vector<PositionPart> parts;  // reported separately besides the whole window
  std::string unsupported;          // non-empty: the protocol cannot run this length, and why
};
LengthPlan plan_length(const Protocol& protocol, int64_t length);

}  // namespace extrap
