#pragma once
// Su's lower bound on RoPE's base (Transformer upgrade road, Part 18, after Men et al. 2024, "Base of
// RoPE Bounds Context Length"): attention can favour similar tokens at every distance m < L only if
// sum_{t < d/2} cos(m b^(-2t/d)) >= 0 there. `extrap schemes --rope-bound L --head-dim D` prints it,
// so a base sweep can be placed against it. Torch-free.
#include <cstdint>

namespace extrap {

// The smallest base b >= 2, on a geometric grid of ratio 1.0002, for which the sum is non-negative
// at every m in [0, length). The set of such b is not an interval (there are pockets), so the grid
// is scanned upwards rather than bisected. Throws UserError for length < 1 or an odd or small
// head_dim.
double rope_base_lower_bound(int64_t length, int64_t head_dim);

}  // namespace extrap
