// NoPE: no positional signal at all; the causal mask alone lets a decoder infer order.
#include "position/scheme.h"

namespace extrap {
namespace {
class NoPositions : public PositionScheme {};
}  // namespace

EXTRAP_REGISTER_SCHEME(nope, SchemeInfo{
    "nope", "no position information; order comes only from the causal mask",
    "Kazemnejad et al. 2023, The Impact of Positional Encoding on Length Generalization", {},
    [](const nlohmann::json&, const ModelShape&) { return std::make_shared<NoPositions>(); }, 0});

}  // namespace extrap
