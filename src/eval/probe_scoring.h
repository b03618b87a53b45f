#pragma once
// Teacher-forced scoring of retrieval probes (eval/probes.h): one forward pass per prompt, and for
// every answer token its log-probability and whether it is the argmax. Exact match (every answer
// token the argmax) is what greedy decoding of the answer would reproduce.
#include <nlohmann/json.hpp>

#include "eval/probes.h"
#include "eval/scoring.h"

namespace extrap {

// The result row of one probe at one length (docs/results.md, "Probe rows"): the prompts and
// their no-needle controls, summarized overall and per depth.
nlohmann::json score_probe(const ModelFactory& make_model, ProbeKind kind, const ProbeParams& params, int64_t length,
                           const ScoringContext& context);

// Tokens decoded greedily past the answers' span (--greedy).
inline constexpr int64_t kGreedySlack = 8;

// Greedy decoding from each prompt's first answer token on (the question and the answer's joiner
// belong to the prompt): as many tokens as the answers span plus kGreedySlack, each the argmax of
// a forward pass over everything so far (no cache: about that many forward passes per prompt), with
// the model built for `horizon` positions. A probe row's `greedy.found` counts the prompts whose
// continuation holds every answer's tokens (the YaRN / LongRoPE passkey criterion, which forgives
// a model that says something else first).
std::vector<std::vector<int64_t>> greedy_continuations(const ModelFactory& make_model,
                                                       const std::vector<const ProbeSequence*>& prompts, int64_t horizon,
                                                       const ScoringContext& context);

}  // namespace extrap
