#include "eval/probe_tokens.h"

#include <algorithm>
#include <limits>
#include <set>

#include "common/error.h"
#include "data/dataset.h"

namespace extrap {
namespace {

// A prompt's text: probes.cpp writes every byte as one token of that value.
std::string as_text(const std::vector<int64_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

// The prompts of one byte length, encoded; false when one is longer than `length` tokens.
bool encode_all(const std::vector<ProbeTrial>& byte_trials, const Tokenizer& tokenizer, int64_t length,
                std::vector<ProbeTrial>& out) {
  out.clear();
  for (const auto& trial : byte_trials) {
    ProbeTrial encoded = trial;
    encoded.prompt = encode_probe_sequence(trial.prompt, tokenizer, &encoded.needle_begin);
    int64_t ignored = -1;
    encoded.control = encode_probe_sequence(trial.control, tokenizer, &ignored);
    if (int64_t(encoded.prompt.tokens.size()) > length) return false;
    out.push_back(std::move(encoded));
  }
  return true;
}

}  // namespace

ProbeSequence encode_probe_sequence(const ProbeSequence& bytes, const Tokenizer& tokenizer, int64_t* needle_begin) {
  const std::string text = as_text(bytes.tokens);
  std::set<int64_t> cuts = {0, int64_t(text.size())};
  if (*needle_begin > 0) cuts.insert(*needle_begin);
  std::vector<int64_t> answer_starts;
  for (const auto& answer : bytes.answers) {
    const int64_t start = answer.begin > 0 && text[std::size_t(answer.begin - 1)] == ' ' ? answer.begin - 1 : answer.begin;
    answer_starts.push_back(start);
    cuts.insert(start);
    cuts.insert(answer.end);
  }
  ProbeSequence encoded;
  std::vector<int64_t> token_at;  // token index of each cut, in cut order
  std::vector<int64_t> cut_list(cuts.begin(), cuts.end());
  for (std::size_t c = 0; c + 1 < cut_list.size(); ++c) {
    token_at.push_back(int64_t(encoded.tokens.size()));
    const auto piece = tokenizer.encode(text.substr(std::size_t(cut_list[c]), std::size_t(cut_list[c + 1] - cut_list[c])));
    encoded.tokens.insert(encoded.tokens.end(), piece.begin(), piece.end());
  }
  token_at.push_back(int64_t(encoded.tokens.size()));
  const auto token_of = [&](int64_t byte) {
    return token_at[std::size_t(std::lower_bound(cut_list.begin(), cut_list.end(), byte) - cut_list.begin())];
  };
  for (std::size_t a = 0; a < bytes.answers.size(); ++a) {
    encoded.answers.push_back({token_of(answer_starts[a]), token_of(bytes.answers[a].end)});
  }
  if (*needle_begin > 0) *needle_begin = token_of(*needle_begin);
  return encoded;
}

namespace {

// The most tokens any of the shortest byte-level prompts encodes to.
int64_t shortest_encoded(ProbeKind kind, const ProbeParams& params, const TokenStream& natural_bytes,
                         const Tokenizer& tokenizer) {
  std::vector<ProbeTrial> encoded;
  encode_all(probe_trials(kind, params, probe_min_length(kind, params), natural_bytes), tokenizer,
             std::numeric_limits<int64_t>::max(), encoded);
  int64_t longest = 0;
  for (const auto& trial : encoded) longest = std::max<int64_t>(longest, int64_t(trial.prompt.tokens.size()));
  return longest;
}

}  // namespace

void require_encoded_probe_lengths(const std::vector<ProbeKind>& kinds, const ProbeParams& params,
                                   const std::vector<int64_t>& lengths, const TokenStream& natural_bytes,
                                   const Tokenizer& tokenizer) {
  if (kinds.empty()) return;
  if (!tokenizer.encodes_text()) {
    throw UserError("probes build their prompts as text; this dataset's " + tokenizer.type() +
                    " tokens cannot encode text (evaluate probes on a dataset prepared by extrap)");
  }
  for (ProbeKind kind : kinds) {
    const int64_t minimum = shortest_encoded(kind, params, natural_bytes, tokenizer);
    for (int64_t length : lengths) {
      if (length < minimum) {
        throw UserError("--lengths " + std::to_string(length) + ": too short for the " + probe_name(kind) +
                        " probe under this tokenizer (its prompt and answers need at least " + std::to_string(minimum) +
                        " tokens)");
      }
    }
  }
}

EncodedTrials encoded_probe_trials(ProbeKind kind, const ProbeParams& params, int64_t length,
                                   const TokenStream& natural_bytes, const Tokenizer& tokenizer) {
  // The shortest byte-level prompt fits (require_encoded_probe_lengths); search up from there.
  EncodedTrials best;
  int64_t low = std::max(length, probe_min_length(kind, params)), high = std::max(low, length * 16);
  if (!encode_all(probe_trials(kind, params, low, natural_bytes), tokenizer, length, best.trials)) {
    throw std::logic_error("probe prompts of " + std::to_string(low) + " bytes exceed " + std::to_string(length) + " tokens");
  }
  best.prompt_bytes = low;
  std::vector<ProbeTrial> candidate;
  while (low < high) {  // invariant: `low` bytes fit
    const int64_t middle = low + (high - low + 1) / 2;
    if (encode_all(probe_trials(kind, params, middle, natural_bytes), tokenizer, length, candidate)) {
      low = middle;
      best.trials = std::move(candidate);
      best.prompt_bytes = middle;
    } else {
      high = middle - 1;
    }
  }
  return best;
}

TokenStream decoded_bytes(const TokenStream& stream, const Tokenizer& tokenizer) {
  std::string text;
  std::vector<int64_t> document;
  for (int64_t i = 0; i < stream.size(); ++i) {
    if (int64_t(stream[i]) != tokenizer.end_of_text()) {
      document.push_back(stream[i]);
      continue;
    }
    text += tokenizer.decode(document) + "\n";
    document.clear();
  }
  text += tokenizer.decode(document);
  return TokenStream::of(encode_bytes(text));
}

}  // namespace extrap
