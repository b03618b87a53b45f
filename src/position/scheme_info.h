#pragma once
// The torch-free face of the position-scheme registry: what `extrap schemes` lists and what the
// config loader validates against. The torch side (building a scheme) lives in position/scheme.h.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "position/position_config.h"

namespace extrap {

class PositionScheme;

struct SchemeParam {
  std::string name;
  nlohmann::json default_value;  // also fixes the accepted JSON type
  std::string description;
  // An inference-time knob (frequency scaling, a ReRoPE window): a treatment may set it, and a
  // switch to another scheme drops it. Other parameters describe what the weights were trained
  // with: treatments cannot change them, and a switch keeps them when the new scheme has them.
  bool inference = false;
};

// What a scheme may depend on besides its own parameters.
struct ModelShape {
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t n_layers = 0;
  int64_t train_length = 0;
  // The window length the model is built for: train_length when training, the evaluated length at
  // evaluation (inference-time treatments derive their extension factor from it).
  int64_t context_length = 0;
  int64_t head_dim() const { return d_model / n_heads; }
  int64_t context() const { return context_length > 0 ? context_length : train_length; }
};

// Which hooks a scheme implements (a bit set), so the config can reject impossible combinations
// before anything is built. Registration checks the first three against what the class overrides.
enum SchemeHooks : unsigned {
  kEmbeddingHook = 1,  // input_embedding: only valid as the model-wide scheme
  kQueryKeyHook = 2,   // transform_qk
  kBiasHook = 4,       // score_bias
  kFarPassHook = 8,    // transform_qk adds far passes: a score merged by token index (merged_rope.h)
  kChunkedPassHook = 16,  // ... merged by chunks of the window, not by distance (Dual Chunk Attention)
};

// How a built scheme depends on the length it is built for (ModelShape::context_length).
enum class LengthUse {
  kNone,       // not at all
  kPerLength,  // fixed per evaluated length (PI, NTK-aware, YaRN with a derived factor)
  kDynamic,    // meant to follow the position within a window (dynamic NTK): dynamic by default
};

using SchemeFactory = std::function<std::shared_ptr<PositionScheme>(const nlohmann::json&, const ModelShape&)>;
using SchemeCheck = std::function<void(const nlohmann::json&, const ModelShape&)>;

// Filled field by field in each scheme's file (see docs/extending.md).
struct SchemeInfo {
  std::string name;
  std::string description;
  std::string reference;
  std::vector<SchemeParam> params;
  unsigned hooks = 0;              // SchemeHooks
  bool integer_positions = false;  // looks positions up in a table: needs integer positions
  // Schemes of one family read the trained weights the same way, so a treatment may switch a layer
  // between them (all rotary schemes: "rotary"). Empty: no switch at inference.
  std::string family;
  // Value checks of fully resolved params, building nothing; throws UserError("position.<param>: ...").
  SchemeCheck check;
  // The longest window the params can represent (0: unbounded); unset means unbounded.
  std::function<int64_t(const nlohmann::json&, const ModelShape&)> max_length;
  // Unset means LengthUse::kNone.
  std::function<LengthUse(const nlohmann::json&)> length_use;
  SchemeFactory create;  // builds the scheme from checked params
  const SchemeParam* find_param(const std::string& param) const;
};

// Registration happens from each scheme's own file (see EXTRAP_REGISTER_SCHEME in scheme.h).
bool register_scheme(SchemeInfo info);
const std::vector<SchemeInfo>& registered_schemes();
// Throws UserError listing the known names when `name` is not registered.
const SchemeInfo& find_scheme(const std::string& name);

// Merges `given` (the "position" object without "scheme") over the scheme's defaults, checking
// unknown keys and types. Error messages name "position.<key>".
nlohmann::json resolve_scheme_params(const SchemeInfo& info, const nlohmann::json& given);

// A "position" object ({"scheme": name, ...params}) resolved against the registry and checked
// (without building the scheme); errors name `key` (e.g. "layers[1].position").
PositionConfig resolve_position(const nlohmann::json& position, const std::string& key, const ModelShape& shape);

// The longest window the scheme built from these params can represent (0: unbounded).
int64_t scheme_max_length(const PositionConfig& position, const ModelShape& shape);
LengthUse scheme_length_use(const PositionConfig& position);

// The one rule for switching schemes, used wherever a "position" object is laid over another
// (`extends`, `--set`, treatments and their layer entries): the result keeps the previous scheme's
// trained (non-inference) parameters that the new scheme also has, then takes the overlay's;
// every other previous value is dropped and named in one warning line (prefixed by `key`).
// Without a "scheme" in the overlay (or with the same one) the objects merge key by key.
nlohmann::json overlay_position(const nlohmann::json& previous, const nlohmann::json& overlay, const std::string& key);

}  // namespace extrap
