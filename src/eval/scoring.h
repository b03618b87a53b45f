#pragma once
// What the evaluator's scoring passes share (language-model protocols in evaluator.cpp, probes in
// probe_scoring.cpp, task bins in task_eval.cpp): the model factory and the per-treatment context.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/documents.h"
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
  // The documents of language-model windows (the run's data.* unless a treatment sets them);
  // probes and tasks score one example per row and ignore them.
  DocumentOptions documents = {};
};

}  // namespace extrap
