#pragma once
// What the evaluator's scoring passes share (language-model protocols in evaluator.cpp, probes in
// probe_scoring.cpp): the model factory, the per-treatment context and dynamic-scaling pieces.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/gpt.h"
#include "position/sampling.h"
#include "runtime/runtime.h"

namespace extrap {

// Builds the trained model as configured for a window of `context` tokens, weights loaded.
using ModelFactory = std::function<GPT(int64_t context)>;

// What every scoring pass of one treatment shares.
struct ScoringContext {
  const std::vector<uint16_t>& stream;
  PositionSampling sampling;  // evaluation positions
  int64_t train_length = 0;
  int64_t batch_tokens = 0;
  const Runtime& runtime;
  int64_t dynamic_step = 0;  // > 0: the model is rebuilt every dynamic_step positions (context_ends)
  int64_t max_length = 0;    // positions the scheme can represent (learned tables); 0: any
};

// Where the model used for a window's positions changes: [0, ends[0]), [ends[0], ends[1]), ...
// With dynamic scaling (spec §3.9: s(pos) = max(L_train, pos + 1) / L_train) the extension
// factor follows the position, recomputed every `dynamic_step` positions: positions
// [ends[c-1], ends[c]) are scored by a forward over the window's first ends[c] tokens with the
// model built for ends[c] tokens, as generation that recomputes the frequencies (with a pre-RoPE
// cache) every `dynamic_step` tokens would score them; the first train_length positions see the
// untreated model. Without it, one piece covers the window.
std::vector<int64_t> context_ends(int64_t length, int64_t train_length, int64_t dynamic_step);

}  // namespace extrap
