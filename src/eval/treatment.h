#pragma once
// Inference-time treatments: variants of a trained model evaluated without retraining (PI, the NTK
// family, YaRN, ReRoPE, log-n†, sliding windows, ...). A treatment is a named JSON overlay on the
// run's resolved config:
//   {"name": "NTK-mixed-logn†",
//    "position": {"scaling": "ntk_mixed"},            // the model-wide scheme (RoPE models only)
//    "attention": {"logn": "inference"},             // every layer
//    "layers": [{"layers": [2], "position": {"scheme": "rerope", "window": 32}}],  // some layers
//    "position_sampling": {"eval": "spread"},
//    "dynamic": true}                                 // dynamic scaling: see dynamic_step
// A "position" overlay keeps the trained scheme's parameters (base, rotary_dims, ...) that the new
// scheme also has. Layer selections are as in a config's `layers`, or "full": the layers trained
// with full attention (HWFA2). Attention overlays may change window, sinks and logn only. The
// strings "$train_length", "$train_length/N", "$train_length*M" and "$train_length*M/N" stand for
// the run's training length and its multiples (rounded down, at least 1) anywhere in the overlay.
// Schemes are parameter-free rotations here, so the trained weights load unchanged.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

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
// (see context_ends in evaluator.cpp). "dynamic": true means every train_length positions, an
// integer sets the step, false turns it off; without the key it is on when a layer of `variant`
// (the config with the treatment applied) uses scaling dynamic_ntk.
int64_t dynamic_step(const Treatment& treatment, const RunConfig& variant);

}  // namespace extrap
