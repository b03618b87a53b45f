#pragma once
// Small statistics shared by the evaluations that count successes (task exact match).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace extrap {

// The 95% Wilson score interval of a proportion with `successes` out of `trials` (trials > 0):
// unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or at `trials`.
inline std::pair<double, double> wilson_interval(int64_t successes, int64_t trials) {
  constexpr double z = 1.959963984540054;  // the 97.5% normal quantile
  const double n = double(trials), p = double(successes) / n, z2 = z * z;
  const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
  // At 0 and at `trials` an end is exactly 0 or 1; rounding must not move it inside.
  return {successes == 0 ? 0.0 : std::max(0.0, centre - half), successes == trials ? 1.0 : std::min(1.0, centre + half)};
}

}  // namespace extrap
