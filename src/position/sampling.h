#pragma once
// Position ids for training steps and evaluation windows (config: position_sampling).
#include "position/sampling_config.h"
#include "position/scheme.h"

namespace extrap {

// The positions of every window of one training step. Random draws are a pure function of
// (seed, step), so a resumed run sees the same positions. One draw per step is shared by the rows of
// the batch. Ordinary sampling gives 0..length-1.
//   random (Ruoss et al. 2023): sort(randperm(range)[:length]), integers.
//   equal_mean (Su, Part 8): n ~ Exponential(mean length); positions linspace(0, 1, length) * n.
Positions training_positions(const PositionSampling& sampling, int64_t length, uint64_t seed, int64_t step,
                             const torch::Device& device);

// ordinary: 0..length-1; spread: `length` evenly spaced points t * range / length in [0, range)
// (table schemes truncate them to integers).
Positions evaluation_positions(const PositionSampling& sampling, int64_t length, const torch::Device& device);

}  // namespace extrap
