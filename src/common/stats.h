#pragma once
// Small statistics shared by result rows.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace extrap {

// The 95% Wilson score interval of a binomial proportion `successes / trials` ({0, 1} for no
// trials): unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
// successes, which small probe and task counts hit all the time.
inline std::array<double, 2> wilson_interval(int64_t successes, int64_t trials) {
  if (trials <= 0) return {0.0, 1.0};
  constexpr double z = 1.959963984540054;
  const double n = double(trials), p = double(successes) / n, z2 = z * z;
  const double center = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = z / (1 + z2 / n) * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

}  // namespace extrap
