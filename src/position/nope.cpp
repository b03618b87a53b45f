// NoPE: no positional signal at all; the causal mask alone lets a decoder infer order.
#include "position/scheme.h"

namespace extrap {
namespace {
class NoPositions : public PositionScheme {};
}  // namespace

EXTRAP_REGISTER_SCHEME(nope, [] {
  SchemeInfo info;
  info.name = "nope";
  info.description = "no position information; order comes only from the causal mask";
  info.reference = "Kazemnejad et al. 2023, The Impact of Positional Encoding on Length Generalization";
  return define_scheme<NoPositions, 0>(info, read_no_params,
                                       [](NoParams, const ModelShape&) { return std::make_shared<NoPositions>(); });
}());

}  // namespace extrap
