#include "eval/protocol.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "common/error.h"

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

const std::vector<std::string>& known_protocols() {
  static const std::vector<std::string> names{"nonoverlap", "sliding", "suffix", "repeated"};
  return names;
}

}  // namespace

std::vector<std::string> parse_protocol_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) names.push_back(part);
  if (names.empty() || text.back() == ',') names.push_back("");
  std::set<std::string> seen;
  for (const auto& name : names) {
    if (std::find(known_protocols().begin(), known_protocols().end(), name) == known_protocols().end()) {
      throw UserError("--protocol: \"" + name + "\" is not a protocol (expected " + kProtocolNames +
                      ", or several separated by commas)");
    }
    if (!seen.insert(name).second) throw UserError("--protocol: " + name + " is given twice");
  }
  return names;
}

nlohmann::json Protocol::to_json() const {
  nlohmann::json json = {{"name", name}, {"max_tokens", max_tokens}};
  if (name == "nonoverlap") {
    json["tokens_scored"] = range_tokens;
  } else if (name == "sliding") {
    json["stride"] = stride;
    json["range_tokens"] = range_tokens;
  } else if (name == "suffix") {
    json["suffix_targets"] = suffix_targets;
    json["source"] = suffix_source;
    json["sample_tokens"] = sample_tokens;
    json["available_samples"] = available_samples;
    json["samples"] = int64_t(samples.size());
    json["tokens_scored"] = int64_t(samples.size()) * suffix_targets;
  }
  return json;
}

std::vector<Protocol> make_protocols(const std::vector<std::string>& names, const ProtocolParams& params,
                                     const std::vector<int64_t>& lengths, int64_t max_tokens, int64_t train_length,
                                     const SplitInfo& split) {
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : ",") + name;
  parse_protocol_names(joined);  // known names, each once
  if (lengths.empty()) throw UserError("eval: --lengths is empty");
  auto uses = [&](const char* name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  if (params.stride != 0 && !uses("sliding")) throw UserError("--stride applies only to --protocol sliding");
  if ((params.suffix_targets != 0 || !params.suffix_source.empty()) && !uses("suffix")) {
    throw UserError(std::string(params.suffix_targets != 0 ? "--suffix-targets" : "--suffix-source") +
                    " applies only to --protocol suffix");
  }
  const int64_t min_length = *std::min_element(lengths.begin(), lengths.end());
  const int64_t max_length = *std::max_element(lengths.begin(), lengths.end());
  const int64_t range_tokens = std::min<int64_t>(max_tokens, split.tokens - 1);

  std::vector<Protocol> protocols;
  for (const auto& name : names) {
    Protocol protocol;
    protocol.name = name;
    protocol.split = split.name;
    protocol.split_tokens = split.tokens;
    protocol.max_tokens = max_tokens;
    if (name == "nonoverlap" || name == "sliding") protocol.range_tokens = range_tokens;
    if (name == "sliding") {
      protocol.stride = params.stride;
      if (params.stride < 0 || params.stride > min_length) {
        throw UserError("--stride " + std::to_string(params.stride) + " is not in [1, " + std::to_string(min_length) +
                        "]: the stride must be at most every evaluated length");
      }
    }
    if (name == "suffix") {
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
      protocol.suffix_source = params.suffix_source.empty() ? "documents" : params.suffix_source;
      protocol.sample_tokens = max_length + 1;
      std::vector<StreamRange> available;
      if (protocol.suffix_source == "documents") {
        available = suffix_document_samples(split.documents, protocol.sample_tokens);
      } else if (protocol.suffix_source == "stream") {
        available = suffix_stream_samples(split.tokens, protocol.sample_tokens);
      } else {
        throw UserError("--suffix-source " + protocol.suffix_source + ": expected documents or stream");
      }
      if (available.empty()) {
        if (protocol.suffix_source == "documents") {
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
        throw UserError("--protocol suffix: the " + split.name + " split has only " + std::to_string(split.tokens) +
                        " tokens, fewer than the " + std::to_string(protocol.sample_tokens) + " that length " +
                        std::to_string(max_length) + " needs");
      }
      protocol.available_samples = int64_t(available.size());
      const int64_t wanted = std::max<int64_t>(1, max_tokens / targets);
      available.resize(std::min<int64_t>(wanted, protocol.available_samples));
      protocol.samples = std::move(available);
    }
    protocols.push_back(std::move(protocol));
  }
  return protocols;
}

LengthPlan plan_length(const Protocol& protocol, int64_t length) {
  LengthPlan plan;
  plan.length = length;
  const std::string& name = protocol.name;
  if (name == "nonoverlap" || name == "sliding") {
    if (length > protocol.range_tokens) {
      plan.unsupported = "the " + protocol.split + " split has only " + std::to_string(protocol.range_tokens) +
                         " scorable tokens, fewer than the length";
      return plan;
    }
    if (name == "nonoverlap") {
      plan.windows = nonoverlap_windows(protocol.range_tokens, length);
      plan.tokens = protocol.range_tokens;
    } else {
      const int64_t stride = protocol.stride > 0 ? protocol.stride : default_stride(length);
      plan.windows = sliding_windows(protocol.range_tokens, length, stride);
      plan.tokens = protocol.range_tokens - (length - stride);
      plan.fields = {{"stride", stride}, {"first_scored_target", length - stride}};
    }
  } else if (name == "suffix") {
    plan.windows = suffix_windows(protocol.samples, length, protocol.suffix_targets);
    plan.tokens = int64_t(protocol.samples.size()) * protocol.suffix_targets;
  } else if (name == "repeated") {
    const int64_t h = repeated_copy_offset(length);
    plan.windows = repeated_windows(protocol.split_tokens, length, protocol.max_tokens);
    if (plan.windows.empty()) {
      plan.unsupported = "the " + protocol.split + " split has only " + std::to_string(protocol.split_tokens) +
                         " tokens, fewer than one segment of " + std::to_string(h);
      return plan;
    }
    plan.tokens = int64_t(plan.windows.size()) * length;
    plan.fields = {{"copy_offset", h}};
    plan.parts = {{"natural", 0, h - 1}, {"copy", h - 1, length}};
  } else {
    throw UserError("unknown protocol " + name);
  }
  return plan;
}

}  // namespace extrap
