#pragma once
// Retrieval probes: prompts whose answer sits at a known place in a long context (passkey,
// RULER-style needles, MQAR associative recall), built as token sequences of an exact length and
// scored teacher-forced by eval/probe_scoring. Torch-free; docs/results.md ("Retrieval probes")
// gives every text byte for byte.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/token_stream.h"

namespace extrap {

enum class ProbeKind { kPasskey, kNiah, kNiahMultikey, kNiahMultivalue, kNiahMultiquery, kMqar };
inline constexpr const char* kProbeNames = "passkey, niah, niah_multikey, niah_multivalue, niah_multiquery or mqar";
const char* probe_name(ProbeKind kind);
// The probe called `name`, or false.
bool find_probe(const std::string& name, ProbeKind& kind);
// Whether the probe places its needle at a requested depth (mqar has no needle to place).
bool probe_has_depth(ProbeKind kind);

// Where the irrelevant text comes from: Landmark's fixed filler sentences, or the evaluated
// split's own held-out text (a natural haystack).
enum class Haystack { kFixed, kNatural };

struct ProbeParams {
  std::vector<double> depths{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  int64_t trials = 10;     // prompts per (length, depth); mqar: per length
  uint64_t seed = 0;
  Haystack haystack = Haystack::kFixed;
  int64_t key_digits = 0;  // passkey: 0 draws the key uniformly from 1..50000, D > 0 from the D-digit numbers
  int64_t needles = 4;     // multikey: needles incl. the asked one; multivalue: values; multiquery and mqar: queries
  bool greedy = false;     // also decode greedily and look for the answers in the continuation
};

// Tokens [begin, end) of a sequence that a probe scores (one answer; a prompt may have several).
struct AnswerSpan {
  int64_t begin = 0;
  int64_t end = 0;
};

struct ProbeSequence {
  std::vector<int64_t> tokens;      // prompt and answers; at most the probe length
  std::vector<AnswerSpan> answers;  // in order, inside tokens
};

// One prompt and its no-needle control: the same sequence with the asked needles (mqar: the
// queried pairs) cut out, so it is shorter by exactly their tokens.
struct ProbeTrial {
  double depth = 0;  // the requested depth (0 for mqar)
  ProbeSequence prompt;
  ProbeSequence control;
  int64_t needle_begin = 0;  // first token of the asked (first) needle in prompt.tokens; -1 for mqar
};

// Text as the run's tokens: today the byte tokenizer (a token per byte).
std::vector<int64_t> probe_tokens(const std::string& text);

// Every prompt of one probe at one length, in (depth, trial) order. `natural_text` is the evaluated
// split's stream (used for Haystack::kNatural; end-of-text tokens read as line breaks). Deterministic
// in (params.seed, kind, length, depth index, trial). Throws UserError when `length` cannot hold the
// prompt and answers, or the natural text is too short.
std::vector<ProbeTrial> probe_trials(ProbeKind kind, const ProbeParams& params, int64_t length,
                                     const TokenStream& natural_text);

// The smallest length that holds the probe's prompt and answers (with the longest keys/values).
int64_t probe_min_length(ProbeKind kind, const ProbeParams& params);
// Throws a one-line UserError naming `length` when it is below probe_min_length.
void require_probe_length(ProbeKind kind, const ProbeParams& params, int64_t length);

// Checks `params` (depths in [0, 1], positive trials and needles, key digits in 0..9, lengths long
// enough) for the probes requested; one-line UserError naming the option otherwise.
void check_probe_params(const std::vector<ProbeKind>& kinds, const ProbeParams& params,
                        const std::vector<int64_t>& lengths);

// The `protocols[]` entry of a probe in the results document.
nlohmann::json probe_json(ProbeKind kind, const ProbeParams& params);

// The fixed texts (Landmark / YaRN / LongRoPE passkey; RULER needles), exposed for tests.
namespace probe_text {
inline constexpr const char* kPasskeyTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
    "about the important information there.";
inline constexpr const char* kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
inline constexpr const char* kPasskeyQuestion = "What is the pass key? The pass key is";
inline constexpr const char* kNiahTask =
    "Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about "
    "the numbers afterwards.";
std::string passkey_needle(const std::string& key);
std::string niah_needle(const std::string& key, const std::string& value);
// The question for `keys` (one key: "What is the special magic number for K ...? ... is"; several
// keys or values: "What are all the special magic numbers for ...? ... are").
std::string niah_question(const std::vector<std::string>& keys, bool several_values);
}  // namespace probe_text

}  // namespace extrap
