#pragma once
#include <cmath>
#include <cstdint>

namespace extrap {

// Linear warmup from lr/warmup to lr over `warmup` steps, then cosine decay to lr * min_ratio at
// `total` steps. `step` counts from 0 (the learning rate of the first update).
inline double learning_rate(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio) {
  if (step < warmup) return lr * double(step + 1) / double(warmup);
  if (total <= warmup) return lr;
  const double progress = std::min(1.0, double(step - warmup) / double(total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return lr * (min_ratio + (1.0 - min_ratio) * cosine);
}

}  // namespace extrap
