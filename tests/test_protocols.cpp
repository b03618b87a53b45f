// The evaluation protocols as pure functions: which windows run, which targets they score, and
// the one-line errors for impossible parameters.
#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "eval/protocol.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

// Window token i for every i = 0..length.
std::vector<int64_t> window_indices(const EvalWindow& window, int64_t length) {
  std::vector<int64_t> indices;
  for (int64_t i = 0; i <= length; ++i) indices.push_back(stream_index(window, i));
  return indices;
}

SplitInfo split_of(int64_t tokens, std::vector<StreamRange> documents = {}) {
  SplitInfo split;
  split.name = "test";
  split.tokens = tokens;
  split.documents = std::move(documents);
  return split;
}

TEST(SlidingProtocol, ScoresEveryTargetInRangeOnceWithEnoughContext) {
  for (int64_t tokens : {100, 97, 64}) {
    for (int64_t length : {1, 7, 10, 32, 64}) {
      for (int64_t stride : {int64_t(1), int64_t(3), default_stride(length), length}) {
        if (stride > length || length > tokens) continue;
        SCOPED_TRACE("tokens " + std::to_string(tokens) + " length " + std::to_string(length) + " stride " +
                     std::to_string(stride));
        const auto windows = sliding_windows(tokens, length, stride);
        std::vector<int> scored(tokens, 0);
        for (std::size_t w = 0; w < windows.size(); ++w) {
          const auto& window = windows[w];
          ASSERT_EQ(window.copy_offset, 0);
          ASSERT_GE(window.start, 0);
          ASSERT_LE(window.start + length, tokens);  // every window is full and inside the range
          // Regular windows start at multiples of the stride; only the last may be aligned to the end.
          if (w + 1 < windows.size()) {
            EXPECT_EQ(window.start, int64_t(w) * stride);
          } else {
            EXPECT_EQ(window.start + length, tokens);
          }
          // Position p has p + 1 tokens of context: at least length - stride + 1.
          ASSERT_GE(window.score_from, length - stride);
          ASSERT_LT(window.score_from, length);
          for (int64_t p = window.score_from; p < length; ++p) ++scored[window.start + p];
        }
        for (int64_t t = 0; t < tokens; ++t) {
          EXPECT_EQ(scored[t], t < length - stride ? 0 : 1) << "target " << t;
        }
        // The plan's count matches.
        int64_t total = 0;
        for (int count : scored) total += count;
        EXPECT_EQ(total, tokens - (length - stride));
      }
    }
  }
  // Stride = length is exactly the nonoverlap protocol.
  for (int64_t length : {7, 10, 32}) {
    const auto a = sliding_windows(100, length, length);
    const auto b = nonoverlap_windows(100, length);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].start, b[i].start);
      EXPECT_EQ(a[i].score_from, b[i].score_from);
    }
  }
  // A worked example: 20 targets, length 8, stride 4: windows at 0, 4, 8, 12 score targets 4..19.
  const auto windows = sliding_windows(20, 8, 4);
  ASSERT_EQ(windows.size(), 4u);
  EXPECT_EQ(windows[3].start, 12);
  EXPECT_EQ(windows[0].score_from, 4);
  // 22 targets: one more window aligned to the end scores only targets 20 and 21.
  const auto aligned = sliding_windows(22, 8, 4);
  ASSERT_EQ(aligned.size(), 5u);
  EXPECT_EQ(aligned.back().start, 14);
  EXPECT_EQ(aligned.back().score_from, 6);
}

TEST(SlidingProtocol, PlanRecordsStrideAndFirstScoredTarget) {
  const auto protocols = make_protocols({ProtocolKind::kSliding}, {}, {8, 32}, 100, 16, split_of(1000));
  ASSERT_EQ(protocols.size(), 1u);
  const auto plan = plan_length(protocols[0], 32);
  EXPECT_EQ(plan.fields.at("stride"), 16);  // default: half the length
  EXPECT_EQ(plan.fields.at("first_scored_target"), 16);
  EXPECT_EQ(plan.tokens, 100 - 16);
  EXPECT_TRUE(plan.unsupported.empty());
  ProtocolParams params;
  params.stride = 8;
  const auto explicit_stride = make_protocols({ProtocolKind::kSliding}, params, {8, 32}, 100, 16, split_of(1000));
  EXPECT_EQ(plan_length(explicit_stride[0], 32).fields.at("first_scored_target"), 24);
  EXPECT_EQ(plan_length(explicit_stride[0], 8).tokens, 100);
  EXPECT_EQ(explicit_stride[0].to_json().at("stride"), 8);
  EXPECT_EQ(explicit_stride[0].to_json().at("range_tokens"), 100);
  // Longer than the range: unsupported, like nonoverlap.
  EXPECT_TRUE(contains(plan_length(protocols[0], 200).unsupported, "fewer than the length"));
}

TEST(SuffixProtocol, ScoresTheSameTargetsAtEveryLength) {
  const std::vector<StreamRange> documents{{0, 50}, {51, 70}, {71, 171}, {172, 240}, {241, 300}};
  const std::vector<int64_t> lengths{8, 16, 33, 48};
  ProtocolParams params;
  params.suffix_targets = 8;
  const auto protocols = make_protocols({ProtocolKind::kSuffix}, params, lengths, 1000, 16, split_of(301, documents));
  const Protocol& suffix = protocols.at(0);
  EXPECT_EQ(suffix.sample_tokens, 49);
  // Documents of at least 49 tokens: all but the second, in order.
  ASSERT_EQ(suffix.samples.size(), 4u);
  EXPECT_EQ(suffix.available_samples, 4);
  EXPECT_EQ(suffix.samples[1].begin, 71);

  std::set<int64_t> reference;
  for (const auto& sample : suffix.samples) {
    for (int64_t t = sample.end - 8; t < sample.end; ++t) reference.insert(t);
  }
  for (int64_t length : lengths) {
    SCOPED_TRACE(length);
    const auto plan = plan_length(suffix, length);
    ASSERT_EQ(plan.windows.size(), 4u);
    EXPECT_EQ(plan.tokens, 32);
    std::set<int64_t> targets;
    for (std::size_t s = 0; s < plan.windows.size(); ++s) {
      const auto& window = plan.windows[s];
      const auto indices = window_indices(window, length);
      // The window is the sample's last length + 1 tokens (input_ids[-(L+1):]).
      EXPECT_EQ(indices.front(), suffix.samples[s].end - (length + 1));
      EXPECT_EQ(indices.back(), suffix.samples[s].end - 1);
      EXPECT_GE(indices.front(), suffix.samples[s].begin);
      for (int64_t p = window.score_from; p < length; ++p) targets.insert(stream_index(window, p + 1));
      EXPECT_EQ(length - window.score_from, 8);
    }
    EXPECT_EQ(targets, reference);  // the same stream indices at every length
  }
  EXPECT_EQ(suffix.to_json().at("tokens_scored"), 32);
  EXPECT_EQ(suffix.to_json().at("source"), "documents");
}

TEST(SuffixProtocol, SampleCountAndStreamSource) {
  const std::vector<StreamRange> documents{{0, 100}, {101, 201}, {202, 302}, {303, 403}};
  ProtocolParams params;
  params.suffix_targets = 10;
  // max(1, max_tokens / K) samples when enough are available.
  EXPECT_EQ(make_protocols({ProtocolKind::kSuffix}, params, {16, 32}, 25, 16, split_of(404, documents))[0].samples.size(), 2u);
  EXPECT_EQ(make_protocols({ProtocolKind::kSuffix}, params, {16, 32}, 5, 16, split_of(404, documents))[0].samples.size(), 1u);
  EXPECT_EQ(make_protocols({ProtocolKind::kSuffix}, params, {16, 32}, 1000, 16, split_of(404, documents))[0].samples.size(), 4u);
  // The training length is the default K.
  EXPECT_EQ(make_protocols({ProtocolKind::kSuffix}, {}, {16, 32}, 1000, 16, split_of(404, documents))[0].suffix_targets, 16);

  params.suffix_source = SuffixSource::kStream;
  const auto stream = make_protocols({ProtocolKind::kSuffix}, params, {16, 32}, 1000, 16, split_of(404, documents))[0];
  ASSERT_EQ(stream.samples.size(), 12u);  // floor(404 / 33) consecutive chunks
  for (std::size_t i = 0; i < stream.samples.size(); ++i) {
    EXPECT_EQ(stream.samples[i].begin, int64_t(i) * 33);
    EXPECT_EQ(stream.samples[i].size(), 33);
  }
  EXPECT_EQ(stream.to_json().at("source"), "stream");
}

TEST(RepeatedProtocol, WindowsHoldAnExactCopyAndTheCopyPartIsExactlyTheCopy) {
  // A stream without repeats, so an equal token means the same stream index.
  const int64_t stream_tokens = 1000;
  const auto protocols = make_protocols({ProtocolKind::kRepeated}, {}, {1, 2, 7, 8, 32, 33}, 100, 16, split_of(stream_tokens));
  for (int64_t length : {1, 2, 7, 8, 32, 33}) {
    SCOPED_TRACE(length);
    const auto plan = plan_length(protocols[0], length);
    const int64_t h = (length + 1) / 2;
    EXPECT_EQ(plan.fields.at("copy_offset"), h);
    ASSERT_EQ(int64_t(plan.windows.size()), (100 + length - 1) / length);  // until >= 100 targets
    EXPECT_EQ(plan.tokens, int64_t(plan.windows.size()) * length);
    ASSERT_EQ(plan.parts.size(), 2u);
    const PositionPart& natural = plan.parts[0];
    const PositionPart& copy = plan.parts[1];
    EXPECT_EQ(natural.name, "natural");
    EXPECT_EQ(copy.name, "copy");
    EXPECT_EQ(natural.begin, 0);
    EXPECT_EQ(natural.end, copy.begin);
    EXPECT_EQ(copy.end, length);
    for (std::size_t k = 0; k < plan.windows.size(); ++k) {
      const auto& window = plan.windows[k];
      EXPECT_EQ(window.score_from, 0);
      const auto indices = window_indices(window, length);
      // Tokens 0..h-1 are the k-th natural segment of the stream, consecutive and non-overlapping.
      for (int64_t i = 0; i < h; ++i) EXPECT_EQ(indices[i], int64_t(k) * h + i);
      ASSERT_LT(indices[h - 1], stream_tokens);
      // Every later token repeats the token h before it.
      for (int64_t i = h; i <= length; ++i) EXPECT_EQ(indices[i], indices[i - h]) << "token " << i;
      // A target (token p + 1) belongs to the copy exactly when it is at or after token h, i.e.
      // exactly the positions of the copy part; natural targets are the segment's own next tokens.
      for (int64_t p = 0; p < length; ++p) {
        const bool in_copy = p >= copy.begin && p < copy.end;
        EXPECT_EQ(in_copy, p + 1 >= h) << "position " << p;
        if (!in_copy) {
          EXPECT_EQ(indices[p + 1], indices[p] + 1);
        }
      }
    }
  }
  // Limited by the stream: no more windows than whole segments.
  EXPECT_EQ(repeated_windows(100, 32, 10000).size(), 6u);
  EXPECT_TRUE(repeated_windows(10, 32, 100).empty());
  EXPECT_TRUE(contains(plan_length(make_protocols({ProtocolKind::kRepeated}, {}, {64}, 100, 16, split_of(10))[0], 64).unsupported,
                       "fewer than one segment of 32"));
}

TEST(Protocols, ParseNames) {
  EXPECT_EQ(parse_protocol_names("nonoverlap"), std::vector<ProtocolKind>{ProtocolKind::kNonoverlap});
  const auto kinds = parse_protocol_names("nonoverlap,repeated,suffix,sliding");
  EXPECT_EQ(kinds, (std::vector<ProtocolKind>{ProtocolKind::kNonoverlap, ProtocolKind::kRepeated,
                                              ProtocolKind::kSuffix, ProtocolKind::kSliding}));
  // The names round-trip: results documents keep the names given.
  for (const ProtocolKind kind : kinds) EXPECT_EQ(parse_protocol_names(protocol_name(kind)).at(0), kind);
  EXPECT_STREQ(protocol_name(ProtocolKind::kSliding), "sliding");
  EXPECT_EQ(parse_suffix_source("documents"), SuffixSource::kDocuments);
  EXPECT_EQ(parse_suffix_source("stream"), SuffixSource::kStream);
  EXPECT_STREQ(suffix_source_name(SuffixSource::kStream), "stream");
  EXPECT_EQ(user_error_message([] { parse_suffix_source("files"); }), "--suffix-source files: expected documents or stream");
  EXPECT_TRUE(contains(user_error_message([] { parse_protocol_names("nonoverlap,bogus"); }), "\"bogus\" is not a protocol"));
  EXPECT_TRUE(contains(user_error_message([] { parse_protocol_names("repeated,repeated"); }), "twice"));
  EXPECT_TRUE(contains(user_error_message([] { parse_protocol_names(""); }), "is not a protocol"));
  EXPECT_TRUE(contains(user_error_message([] { parse_protocol_names("sliding,"); }), "is not a protocol"));
}

TEST(Protocols, ImpossibleParametersAreOneLineErrors) {
  const auto split = split_of(1000, {{0, 300}, {301, 800}, {801, 999}});
  auto error = [&](std::vector<ProtocolKind> kinds, ProtocolParams params, std::vector<int64_t> lengths) {
    const std::string message =
        user_error_message([&] { make_protocols(kinds, params, lengths, 256, 16, split); });
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  };
  ProtocolParams stride;
  stride.stride = 40;
  EXPECT_TRUE(contains(error({ProtocolKind::kSliding}, stride, {32, 64}), "--stride 40 is not in [1, 32]"));
  EXPECT_TRUE(contains(error({ProtocolKind::kNonoverlap}, stride, {32}), "--stride applies only to --protocol sliding"));
  stride.stride = -1;
  EXPECT_TRUE(contains(error({ProtocolKind::kSliding}, stride, {32}), "is not in [1, 32]"));

  ProtocolParams targets;
  targets.suffix_targets = 40;
  EXPECT_TRUE(contains(error({ProtocolKind::kSuffix}, targets, {32, 64}), "--suffix-targets 40 is larger than the shortest length 32"));
  EXPECT_TRUE(contains(error({ProtocolKind::kNonoverlap}, targets, {32}), "--suffix-targets applies only to --protocol suffix"));
  // The default K (the training length, 16) must fit too.
  EXPECT_TRUE(contains(error({ProtocolKind::kSuffix}, {}, {8, 64}), "pass --suffix-targets K <= 8"));
  // No document long enough: the message names the length needed and the longest document.
  const std::string none = error({ProtocolKind::kSuffix}, {}, {32, 600});
  EXPECT_TRUE(contains(none, "length 600")) << none;
  EXPECT_TRUE(contains(none, "601 tokens")) << none;
  EXPECT_TRUE(contains(none, "the longest of the 3 has 499")) << none;
  SplitInfo named = split;
  named.document_names = {"a", "b", "c"};
  const std::string with_name = user_error_message([&] { make_protocols({ProtocolKind::kSuffix}, {}, {32, 600}, 256, 16, named); });
  EXPECT_TRUE(contains(with_name, "the longest of the 3 (b) has 499")) << with_name;
  ProtocolParams stream;
  stream.suffix_source = SuffixSource::kStream;
  EXPECT_TRUE(contains(error({ProtocolKind::kSuffix}, stream, {32, 2000}), "only 1000 tokens"));
  EXPECT_TRUE(contains(error({ProtocolKind::kRepeated}, stream, {32}), "--suffix-source applies only to --protocol suffix"));
  EXPECT_TRUE(contains(error({ProtocolKind::kNonoverlap, ProtocolKind::kNonoverlap}, {}, {32}), "twice"));
}

}  // namespace
}  // namespace extrap
