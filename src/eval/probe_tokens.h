#pragma once
// Probes under a subword tokenizer. probes.cpp builds prompts byte by byte (exact lengths, needles
// at sentence starts); here a byte-level prompt is re-encoded by the run's tokenizer, segment by
// segment so that answers and needles start on token boundaries, and its byte length is the
// largest whose every prompt fits the requested token length. Torch-free.
#include <cstdint>
#include <vector>

#include "data/token_stream.h"
#include "data/tokenizer.h"
#include "eval/probes.h"

namespace extrap {

// One byte-level sequence as the tokenizer's tokens: the text before the asked needle, the needle
// and the text up to each answer, and each answer with the space before it, are encoded apart
// (they meet at a line break or a space, where SentencePiece splits anyway).
ProbeSequence encode_probe_sequence(const ProbeSequence& bytes, const Tokenizer& tokenizer, int64_t* needle_begin);

struct EncodedTrials {
  std::vector<ProbeTrial> trials;
  int64_t prompt_bytes = 0;  // the byte length the prompts were built at
};

// The trials of probe_trials at the largest byte length whose encoded prompts all fit `length`
// tokens. `natural_bytes` is the evaluated split as bytes (documents joined by line breaks).
EncodedTrials encoded_probe_trials(ProbeKind kind, const ProbeParams& params, int64_t length,
                                   const TokenStream& natural_bytes, const Tokenizer& tokenizer);

// Throws a one-line UserError naming the first length too short for a probe's shortest prompt
// once encoded (the byte-level minimum, probe_min_length, re-encoded).
void require_encoded_probe_lengths(const std::vector<ProbeKind>& kinds, const ProbeParams& params,
                                   const std::vector<int64_t>& lengths, const TokenStream& natural_bytes,
                                   const Tokenizer& tokenizer);

// The split's documents decoded to bytes, each followed by a line break, for natural haystacks.
TokenStream decoded_bytes(const TokenStream& stream, const Tokenizer& tokenizer);

}  // namespace extrap
