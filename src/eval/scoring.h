#pragma once
// What the evaluator's scoring passes share (language-model protocols in evaluator.cpp, probes in
// probe_scoring.cpp, task bins in task_eval.cpp): the model factory and the per-treatment context.
#include <cstdint>
#include <functional>
#include <vector>

#include "data/batch_sampler.h"
#include "data/token_stream.h"
#include "data/tokenizer.h"
#include "model/documents.h"
#include "model/gpt.h"
#include "parallel/process_group.h"
#include "position/sampling.h"
#include "runtime/runtime.h"


namespace extrap {

// Builds the trained model as configured for a window of `context` tokens, weights loaded.
using ModelFactory = std::function<GPT(int64_t context)>;

// What every scoring pass of one treatment shares.
struct ScoringContext {
  const TokenStream& stream;
  // Bytes of text per token id (bits per byte); empty when the tokenizer cannot say.
  const std::vector<int32_t>& token_bytes;
  PositionSampling sampling;  // evaluation positions
  int64_t train_length = 0;
  int64_t batch_tokens = 0;
  const Runtime& runtime;
  int64_t dynamic_step = 0;  // > 0: the model is rebuilt every dynamic_step positions (context_ends)
  int64_t max_length = 0;    // positions the scheme can represent (learned tables); 0: any
  // The run's tokenizer, and the split as bytes for natural haystacks: probes re-encode their
  // prompts when it is not the byte tokenizer (eval/probe_tokens.h). Null: bytes.
  const Tokenizer* tokenizer = nullptr;
  const TokenStream* probe_text = nullptr;
  // The documents of language-model windows (the run's data.* unless a treatment sets them);
  // probes and tasks score one example per row and ignore them.
  DocumentOptions documents = {};
  // The processes sharing the evaluation (null: this one alone). Each scores the batches the
  // sampler deals it; the passes then sum their per-target statistics across the group, so every
  // process ends with the whole row.
  const ProcessGroup* group = nullptr;

  bool owns(int64_t batch_index) const {
    return group == nullptr || BatchSampler::evaluation(group->rank(), group->size()).owns(batch_index);
  }
  void sum_(std::vector<torch::Tensor> tensors) const {  // the tensors share storage with the caller's
    if (group != nullptr) group->sum_(tensors);
  }
};

}  // namespace extrap
