#pragma once
// Documents packed into one window (data.reset_positions, data.mask_documents; docs/model.md,
// "Documents in a window"). A document starts at the first token of a window and at every
// end-of-text input token: the EOT that ends one document is the next one's first token, its BOS
// (the modded-nanoGPT / Llama 3 convention). Off, a window is one sequence whatever it holds.
#include <torch/torch.h>

#include "config/run_config.h"
#include "model/attention_plan.h"
#include "position/scheme.h"

namespace extrap {

// What the run asks for and the dataset's end-of-text id.
struct DocumentOptions {
  bool reset_positions = false;  // position ids restart at 0 at each document start
  bool mask_documents = false;   // no query attends to a key of another document
  int64_t end_of_text = -1;      // the token that separates documents (metadata tokenizer.end_of_text)
  bool active() const { return reset_positions || mask_documents; }
};

// The options of `data` with the end-of-text id of the dataset whose metadata.json is `metadata`;
// throws UserError naming `dataset` when an option is on and the metadata has no such id.
DocumentOptions document_options(const DataConfig& data, const nlohmann::json& metadata, const std::string& dataset);

// The rule: start[b, t] is the index of the first token of token t's document, the largest t' <= t
// with t' = 0 or tokens[b, t'] = end_of_text. Equivalently, with segment ids s[0] = 0 and
// s[t] = s[t-1] + (tokens[t] == end_of_text), token t's document is the run of tokens that share
// s[t]. tokens: [B, T] int64; returns [B, T] int64 on the same device.
torch::Tensor document_starts(const torch::Tensor& tokens, int64_t end_of_text);

// `base` restarted at every document: p[b, t] = base[t - start[b, t]], so each document sees the
// window's first positions (0, 1, 2, ... for ordinary positions; the first draws of a sampled
// set). Per row: values [B, T].
Positions reset_positions(const Positions& base, const torch::Tensor& starts);

// What the attention kernels need to keep each query inside its document (undefined: no masking).
struct DocumentMask {
  torch::Tensor starts;       // [B, T] int64 on the model's device (masks built there)
  torch::Tensor host_starts;  // the same, contiguous on the CPU (the kernels plan their tiles from it)
  bool defined() const { return starts.defined(); }
  DocumentStarts view() const;
};

// The positions and document mask of one forward pass.
struct WindowLayout {
  Positions positions;
  DocumentMask documents;
};

// tokens [B, T] under `options`: reset positions and the mask when asked for. A batch whose windows
// hold no document start after token 0 is laid out exactly as with the options off.
WindowLayout window_layout(const torch::Tensor& tokens, const Positions& base, const DocumentOptions& options);

}  // namespace extrap
