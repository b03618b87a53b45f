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

}  // namespace extrap
