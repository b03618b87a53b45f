#pragma once
// The torch-free face of the position-scheme registry: what `extrap schemes` lists and what the
// config loader validates against. The torch side (building a scheme) lives in position/scheme.h.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

class PositionScheme;

struct SchemeParam {
  std::string name;
  nlohmann::json default_value;  // also fixes the accepted JSON type
  std::string description;
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
// before anything is built.
enum SchemeHooks : unsigned {
  kEmbeddingHook = 1,  // adds an input embedding: only valid as the model-wide scheme
  kQueryKeyHook = 2,   // transforms q and k
  kBiasHook = 4,       // additive score bias
  kFarPassHook = 8,    // custom two-pass score (ReRoPE family)
};

struct SchemeInfo {
  std::string name;
  std::string description;
  std::string reference;
  std::vector<SchemeParam> params;
  // Builds the scheme from fully resolved params; throws UserError("<param>: <problem>") on bad values.
  std::function<std::shared_ptr<PositionScheme>(const nlohmann::json& params, const ModelShape& shape)> create;
  unsigned hooks = 0;              // SchemeHooks
  bool integer_positions = false;  // needs integer positions (table lookups)
  bool rotary = false;             // a RoPE-family scheme (inference-time RoPE treatments apply)
};

// Registration happens from each scheme's own file (see EXTRAP_REGISTER_SCHEME in scheme.h).
bool register_scheme(SchemeInfo info);
const std::vector<SchemeInfo>& registered_schemes();
// Throws UserError listing the known names when `name` is not registered.
const SchemeInfo& find_scheme(const std::string& name);

// Merges `given` (the "position" object without "scheme") over the scheme's defaults, checking
// unknown keys and types. Error messages name "position.<key>".
nlohmann::json resolve_scheme_params(const SchemeInfo& info, const nlohmann::json& given);

// Builds the scheme once to run its value checks; throws UserError naming the parameter.
void validate_scheme(const std::string& name, const nlohmann::json& params, const ModelShape& shape);
// The longest window the scheme built from these params can represent (0: unbounded).
int64_t scheme_max_length(const std::string& name, const nlohmann::json& params, const ModelShape& shape);

}  // namespace extrap
