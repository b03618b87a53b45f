#pragma once
// Private to src/config/: resolves the `layers` entries and every layer's attention settings.
#include <nlohmann/json.hpp>

#include "config/run_config.h"

namespace extrap {

// Fills config.layers and config.layer_schemes from document["attention"] and document["layers"],
// and rewrites both in `document` with every setting spelled out (the window the HWFA rule chose
// included), so that re-reading the document gives the same layers.
void resolve_layers(nlohmann::json& document, const ModelShape& shape, RunConfig& config);

}  // namespace extrap
