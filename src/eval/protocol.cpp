#include "eval/protocol.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "eval/probes.h"

namespace extrap {

std::vector<EvalWindow> nonoverlap_windows(int64_t tokens, int64_t length) {
  std::vector<EvalWindow> windows;
  int64_t start = 0;
  for (; start + length <= tokens; start += length) windows.push_back({start, 0});
  const int64_t remaining = tokens - start;
  if (remaining > 0) windows.push_back({tokens - length, length - remaining});
  return windows;
}

std::vector<EvalWindow> sliding_windows(int64_t tokens, int64_t length, int64_t stride) {
  std::vector<EvalWindow> windows;
  int64_t scored_end = 0;  // targets [0, scored_end) are scored or skipped
  // Window k starts at k * stride; the previous one ended at (k - 1) * stride + length, so the
  // targets new to it are its positions >= length - stride (for the first window too).
  for (int64_t start = 0; start + length <= tokens; start += stride) {
    windows.push_back({start, length - stride});
    scored_end = start + length;
  }
  if (scored_end < tokens) windows.push_back({tokens - length, scored_end - (tokens - length)});
  return windows;
}

std::vector<EvalWindow> suffix_windows(const std::vector<StreamRange>& samples, int64_t length, int64_t targets) {
  std::vector<EvalWindow> windows;
  windows.reserve(samples.size());
  for (const auto& sample : samples) windows.push_back({sample.end - (length + 1), length - targets});
  return windows;
}

std::vector<StreamRange> suffix_document_samples(const std::vector<StreamRange>& documents, int64_t min_tokens) {
  std::vector<StreamRange> samples;
  for (const auto& document : documents) {
    if (document.size() >= min_tokens) samples.push_back(document);
  }
  return samples;
}

std::vector<StreamRange> suffix_stream_samples(int64_t stream_tokens, int64_t sample_tokens) {
  std::vector<StreamRange> samples;
  for (int64_t begin = 0; begin + sample_tokens <= stream_tokens; begin += sample_tokens) {
    samples.push_back({begin, begin + sample_tokens});
  }
  return samples;
}

std::vector<EvalWindow> repeated_windows(int64_t stream_tokens, int64_t length, int64_t max_targets) {
  const int64_t h = repeated_copy_offset(length);
  const int64_t count = std::min((max_targets + length - 1) / length, stream_tokens / h);
  std::vector<EvalWindow> windows;
  for (int64_t k = 0; k < count; ++k) windows.push_back({k * h, 0, h});
  return windows;
}

std::vector<std::pair<int64_t, int64_t>> position_buckets(int64_t length) {
  std::vector<std::pair<int64_t, int64_t>> buckets{{0, std::min<int64_t>(1, length)}};
  for (int64_t begin = 1; begin < length; begin *= 2) buckets.emplace_back(begin, std::min(length, begin * 2));
  return buckets;
}

// ---- Protocols --------------------------------------------------------------------------------

namespace {

struct ProtocolName {
  ProtocolKind kind;
  const char* name;
};
constexpr ProtocolName kProtocolTable[] = {{ProtocolKind::kNonoverlap, "nonoverlap"},
                                           {ProtocolKind::kSliding, "sliding"},
                                           {ProtocolKind::kSuffix, "suffix"},
                                           {ProtocolKind::kRepeated, "repeated"}};

struct SourceName {
  SuffixSource source;
  const char* name;
};
constexpr SourceName kSourceTable[] = {{SuffixSource::kDocuments, "documents"}, {SuffixSource::kStream, "stream"}};

bool uses(const std::vector<ProtocolKind>& kinds, ProtocolKind kind) {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

}  // namespace

const char* protocol_name(ProtocolKind kind) {
  for (const auto& entry : kProtocolTable) {
    if (entry.kind == kind) return entry.name;
  }
  return "?";
}

const char* suffix_source_name(SuffixSource source) {
  for (const auto& entry : kSourceTable) {
    if (entry.source == source) return entry.name;
  }
  return "?";
}

std::vector<ProtocolKind> parse_protocol_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) names.push_back(part);
  if (names.empty() || text.back() == ',') names.push_back("");
  std::vector<ProtocolKind> kinds;
  for (const auto& name : names) {
    const auto* found = std::find_if(std::begin(kProtocolTable), std::end(kProtocolTable),
                                     [&](const ProtocolName& entry) { return name == entry.name; });
    if (found == std::end(kProtocolTable)) {
      throw UserError("--protocol: \"" + name + "\" is not a protocol (expected " + kProtocolNames + ", a probe: " +
                      kProbeNames + ", or several separated by commas)");
    }
    if (uses(kinds, found->kind)) throw UserError("--protocol: " + name + " is given twice");
    kinds.push_back(found->kind);
  }
  return kinds;
}

SuffixSource parse_suffix_source(const std::string& name) {
  for (const auto& entry : kSourceTable) {
    if (name == entry.name) return entry.source;
  }
  throw UserError("--suffix-source " + name + ": expected documents or stream");
}

nlohmann::json Protocol::to_json() const {
  nlohmann::json json = {{"name", name()}, {"max_tokens", max_tokens}};
  switch (kind) {
    case ProtocolKind::kNonoverlap:
      json["tokens_scored"] = range_tokens;
      break;
    case ProtocolKind::kSliding:
      json["stride"] = stride;
      json["range_tokens"] = range_tokens;
      break;
    case ProtocolKind::kSuffix:
      json["suffix_targets"] = suffix_targets;
      json["source"] = suffix_source_name(suffix_source);
      json["sample_tokens"] = sample_tokens;
      json["available_samples"] = available_samples;
      json["samples"] = int64_t(samples.size());
      json["tokens_scored"] = int64_t(samples.size()) * suffix_targets;
      break;
    case ProtocolKind::kRepeated:
      break;
  }
  return json;
}

namespace {

// The suffix samples of `split` for lengths up to max_length: documents or stream chunks of
// max_length + 1 tokens; throws UserError when there are none.
std::vector<StreamRange> available_suffix_samples(const Protocol& protocol, int64_t max_length, const SplitInfo& split) {
  if (protocol.suffix_source == SuffixSource::kStream) {
    auto available = suffix_stream_samples(split.tokens, protocol.sample_tokens);
    if (available.empty()) {
      throw UserError("--protocol suffix: the " + split.name + " split has only " + std::to_string(split.tokens) +
                      " tokens, fewer than the " + std::to_string(protocol.sample_tokens) + " that length " +
                      std::to_string(max_length) + " needs");
    }
    return available;
  }
  auto available = suffix_document_samples(split.documents, protocol.sample_tokens);
  if (available.empty()) {
    std::size_t longest = 0;
    for (std::size_t d = 0; d < split.documents.size(); ++d) {
      if (split.documents[d].size() > split.documents[longest].size()) longest = d;
    }
    const int64_t longest_tokens = split.documents.empty() ? 0 : split.documents[longest].size();
    const std::string longest_name =
        longest < split.document_names.size() ? " (" + split.document_names[longest] + ")" : "";
    throw UserError("--protocol suffix: no " + split.name + " document is long enough for length " +
                    std::to_string(max_length) + ": it needs " + std::to_string(protocol.sample_tokens) +
                    " tokens, and the longest of the " + std::to_string(split.documents.size()) + longest_name +
                    " has " + std::to_string(longest_tokens) + "; use shorter --lengths or --suffix-source stream");
  }
  return available;
}

// K, the source and the samples of the suffix protocol.
void resolve_suffix(Protocol& protocol, const ProtocolParams& params, const std::vector<int64_t>& lengths,
                    int64_t train_length, const SplitInfo& split) {
  const int64_t min_length = *std::min_element(lengths.begin(), lengths.end());
  const int64_t max_length = *std::max_element(lengths.begin(), lengths.end());
  const int64_t targets = params.suffix_targets != 0 ? params.suffix_targets : train_length;
  if (params.suffix_targets < 0) {
    throw UserError("--suffix-targets " + std::to_string(params.suffix_targets) + " is not a positive count");
  }
  if (targets > min_length) {
    throw UserError(params.suffix_targets != 0
                        ? "--suffix-targets " + std::to_string(targets) + " is larger than the shortest length " +
                              std::to_string(min_length) + " (every length scores the same last K targets)"
                        : "--protocol suffix scores the last K = training length " + std::to_string(targets) +
                              " targets, more than the shortest length " + std::to_string(min_length) +
                              "; pass --suffix-targets K <= " + std::to_string(min_length));
  }
  protocol.suffix_targets = targets;
  protocol.suffix_source = params.suffix_source.value_or(SuffixSource::kDocuments);
  protocol.sample_tokens = max_length + 1;
  auto available = available_suffix_samples(protocol, max_length, split);
  protocol.available_samples = int64_t(available.size());
  const int64_t wanted = std::max<int64_t>(1, protocol.max_tokens / targets);
  available.resize(std::min<int64_t>(wanted, protocol.available_samples));
  protocol.samples = std::move(available);
}

}  // namespace

std::vector<Protocol> make_protocols(const std::vector<ProtocolKind>& kinds, const ProtocolParams& params,
                                     const std::vector<int64_t>& lengths, int64_t max_tokens, int64_t train_length,
                                     const SplitInfo& split) {
  for (auto kind = kinds.begin(); kind != kinds.end(); ++kind) {
    if (std::find(kinds.begin(), kind, *kind) != kind) {
      throw UserError(std::string("--protocol: ") + protocol_name(*kind) + " is given twice");
    }
  }
  if (lengths.empty()) throw UserError("eval: --lengths is empty");
  if (params.stride != 0 && !uses(kinds, ProtocolKind::kSliding)) {
    throw UserError("--stride applies only to --protocol sliding");
  }
  if ((params.suffix_targets != 0 || params.suffix_source) && !uses(kinds, ProtocolKind::kSuffix)) {
    throw UserError(std::string(params.suffix_targets != 0 ? "--suffix-targets" : "--suffix-source") +
                    " applies only to --protocol suffix");
  }
  const int64_t min_length = *std::min_element(lengths.begin(), lengths.end());

  std::vector<Protocol> protocols;
  for (const ProtocolKind kind : kinds) {
    Protocol protocol;
    protocol.kind = kind;
    protocol.split = split.name;
    protocol.split_tokens = split.tokens;
    protocol.max_tokens = max_tokens;
    if (kind == ProtocolKind::kNonoverlap || kind == ProtocolKind::kSliding) {
      protocol.range_tokens = std::min<int64_t>(max_tokens, split.tokens - 1);
    }
    if (kind == ProtocolKind::kSliding) {
      protocol.stride = params.stride;
      if (params.stride < 0 || params.stride > min_length) {
        throw UserError("--stride " + std::to_string(params.stride) + " is not in [1, " + std::to_string(min_length) +
                        "]: the stride must be at most every evaluated length");
      }
    }
    if (kind == ProtocolKind::kSuffix) resolve_suffix(protocol, params, lengths, train_length, split);
    protocols.push_back(std::move(protocol));
  }
  return protocols;
}

namespace {

// nonoverlap and sliding: windows over the first range_tokens targets.
void plan_contiguous(const Protocol& protocol, LengthPlan& plan) {
  const int64_t length = plan.length;
  if (length > protocol.range_tokens) {
    plan.unsupported = "the " + protocol.split + " split has only " + std::to_string(protocol.range_tokens) +
                       " scorable tokens, fewer than the length";
    return;
  }
  if (protocol.kind == ProtocolKind::kNonoverlap) {
    plan.windows = nonoverlap_windows(protocol.range_tokens, length);
    plan.tokens = protocol.range_tokens;
    return;
  }
  const int64_t stride = protocol.stride > 0 ? protocol.stride : default_stride(length);
  plan.windows = sliding_windows(protocol.range_tokens, length, stride);
  plan.tokens = protocol.range_tokens - (length - stride);
  plan.fields = {{"stride", stride}, {"first_scored_target", length - stride}};
}

void plan_repeated(const Protocol& protocol, LengthPlan& plan) {
  const int64_t length = plan.length, h = repeated_copy_offset(length);
  plan.windows = repeated_windows(protocol.split_tokens, length, protocol.max_tokens);
  if (plan.windows.empty()) {
    plan.unsupported = "the " + protocol.split + " split has only " + std::to_string(protocol.split_tokens) +
                       " tokens, fewer than one segment of " + std::to_string(h);
    return;
  }
  plan.tokens = int64_t(plan.windows.size()) * length;
  plan.fields = {{"copy_offset", h}};
  plan.parts = {{"natural", 0, h - 1}, {"copy", h - 1, length}};
}

}  // namespace

LengthPlan plan_length(const Protocol& protocol, int64_t length) {
  LengthPlan plan;
  plan.length = length;
  switch (protocol.kind) {
    case ProtocolKind::kNonoverlap:
    case ProtocolKind::kSliding:
      plan_contiguous(protocol, plan);
      break;
    case ProtocolKind::kSuffix:
      plan.windows = suffix_windows(protocol.samples, length, protocol.suffix_targets);
      plan.tokens = int64_t(protocol.samples.size()) * protocol.suffix_targets;
      break;
    case ProtocolKind::kRepeated:
      plan_repeated(protocol, plan);
      break;
  }
  return plan;
}

}  // namespace extrap
