#include "position/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/random.h"

namespace extrap {
namespace {

Positions from_values(std::vector<double> values, const torch::Device& device) {
  auto tensor = torch::tensor(values, torch::kFloat64).to(device);
  return Positions{tensor, false};
}

}  // namespace

Positions training_positions(const PositionSampling& sampling, int64_t length, uint64_t seed, int64_t step,
                             const torch::Device& device) {
  if (sampling.train == TrainPositions::kOrdinary) return Positions::arange(length, device);
  SplitMix64 rng(splitmix64(splitmix64(seed ^ 0x9051ULL) ^ uint64_t(step)));
  std::vector<double> values(length);
  if (sampling.train == TrainPositions::kRandom) {
    // Partial Fisher-Yates: the first `length` entries of a random permutation of [0, range).
    std::vector<int64_t> pool(sampling.range);
    std::iota(pool.begin(), pool.end(), 0);
    for (int64_t i = 0; i < length; ++i) std::swap(pool[i], pool[i + int64_t(rng.next() % uint64_t(sampling.range - i))]);
    std::sort(pool.begin(), pool.begin() + length);
    std::copy(pool.begin(), pool.begin() + length, values.begin());
  } else if (sampling.train == TrainPositions::kPose) {
    // PoSE (Zhu et al. 2024; dwzhu-pku/PoSE): cut points 0 < c_1 < ... < c_{N-1} < T and skips
    // 0 = u_0 <= u_1 <= ... <= u_{N-1} <= range - T, all uniform; token t of piece n sits at t + u_n.
    const int64_t pieces = std::min(sampling.chunks, length);
    std::vector<int64_t> cuts(length - 1);
    std::iota(cuts.begin(), cuts.end(), 1);
    for (int64_t i = 0; i + 1 < pieces; ++i) {
      std::swap(cuts[i], cuts[i + int64_t(rng.next() % uint64_t(cuts.size() - i))]);
    }
    cuts.resize(pieces - 1);
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> skips(pieces - 1);
    for (auto& skip : skips) skip = int64_t(rng.next() % uint64_t(sampling.range - length + 1));
    std::sort(skips.begin(), skips.end());
    for (int64_t t = 0, piece = 0; t < length; ++t) {
      while (piece < pieces - 1 && t >= cuts[piece]) ++piece;
      values[t] = double(t + (piece == 0 ? 0 : skips[piece - 1]));
    }
  } else {  // equal_mean
    const double n = -double(length) * std::log1p(-rng.uniform());  // Exponential with mean `length`
    for (int64_t t = 0; t < length; ++t) values[t] = length == 1 ? 0.0 : n * double(t) / double(length - 1);
  }
  return from_values(values, device);
}

Positions evaluation_positions(const PositionSampling& sampling, int64_t length, const torch::Device& device) {
  if (sampling.eval == EvalPositions::kOrdinary) return Positions::arange(length, device);
  std::vector<double> values(length);
  for (int64_t t = 0; t < length; ++t) values[t] = double(t) * double(sampling.range) / double(length);
  return from_values(values, device);
}

}  // namespace extrap
