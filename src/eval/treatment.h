#pragma once
// Inference-time treatments: variants of a trained model evaluated without retraining (PI, the NTK
// family, YaRN, ReRoPE, log-n†, sliding windows, ...). A treatment is a named JSON overlay on the
// run's resolved config:
//   {"name": "NTK-mixed-logn†",
//    "position": {"scaling": "ntk_mixed"},            // the model-wide scheme
//    "attention": {"logn": "inference"},             // every layer
//    "layers": [{"layers": [2], "position": {"scheme": "rerope", "window": 32}}],  // some layers
//    "position_sampling": {"eval": "spread"},
//    "data": {"mask_documents": false},               // documents in a window (reset_positions too)
//    "dynamic": true}                                 // dynamic scaling: see dynamic_step
// The overlay goes through the config's own merge and validation (merge_config, the scheme
// switching rule of overlay_position, resolve_position, read_attention). What it may change is
// declared, not listed here: a scheme's inference-time parameters (SchemeParam::inference), a
// switch within a scheme family (SchemeInfo::family), the attention settings of
// kInferenceAttentionSettings (a trained log-n stays), position_sampling.eval, and
// data.reset_positions / data.mask_documents. Layer
// selections are as in a config's `layers`, or "full": the layers trained with full attention
// (HWFA2). The strings "$train_length", "$train_length/N", "$train_length*M" and
// "$train_length*M/N" stand for the run's training length and its multiples (rounded down, at
// least 1) anywhere in the overlay.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.h"

namespace extrap {

struct Treatment {
  std::string name;
  nlohmann::json overlay = nlohmann::json::object();  // without "name"
};

// The untreated model, named "baseline".
Treatment baseline_treatment();

// Reads treatments from JSON files, each either one treatment object or {"treatments": [...]}.
// Names must be unique and not "baseline"; keys starting with "_" are comments. Errors name the
// file and the entry.
std::vector<Treatment> load_treatments(const std::vector<std::string>& files);

// The treatments named in `names`, in that order; throws UserError for a name that is not there.
std::vector<Treatment> select_treatments(const std::vector<Treatment>& treatments, const std::vector<std::string>& names);

// The run's config with the treatment applied; throws UserError naming the treatment when it does
// not fit the model (e.g. a RoPE treatment on an ALiBi model).
RunConfig apply_treatment(const RunConfig& trained, const Treatment& treatment);

// Dynamic scaling (spec §3.9): 0 when the extension factor is fixed for a whole window; otherwise
// the evaluator rebuilds the model every this many positions so that s follows the position
// (see context_ends). "dynamic": true means every train_length positions, an
// integer sets the step, false turns it off; without the key it is on when a layer of `variant`
// (the config with the treatment applied) uses scaling dynamic_ntk.
int64_t dynamic_step(const Treatment& treatment, const RunConfig& variant);

// Where the model used for a window's positions changes: [0, ends[0]), [ends[0], ends[1]), ...
// With dynamic scaling (spec §3.9: s(pos) = max(L_train, pos + 1) / L_train) the extension
// factor follows the position, recomputed every `dynamic_step` positions: positions
// [ends[c-1], ends[c]) are scored by a forward over the window's first ends[c] tokens with the
// model built for ends[c] tokens, as generation that recomputes the frequencies (with a pre-RoPE
// cache) every `dynamic_step` tokens would score them; the first train_length positions see the
// untreated model. Without it, one piece covers the window.
std::vector<int64_t> context_ends(int64_t length, int64_t train_length, int64_t dynamic_step);

}  // namespace extrap
