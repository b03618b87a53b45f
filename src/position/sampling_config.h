#pragma once
// Which position ids the schemes see (config: position_sampling). Training may replace 0..T-1 by
// random positions (Ruoss et al.: a sorted sample without replacement from [0, range); Su's
// equal-mean variant: T evenly spaced float positions over [0, n] with n ~ Exponential(mean T);
// PoSE: the window cut into `chunks` pieces at random points, each piece's positions consecutive
// and shifted by a random skip, the skips non-decreasing and within [0, range - T]); evaluation
// uses 0..T-1 or T evenly spaced positions over [0, range).
#include <cstdint>
#include <vector>

#include "common/text.h"
#include "position/position_config.h"
#include "position/scheme_info.h"

namespace extrap {

enum class TrainPositions { kOrdinary, kRandom, kEqualMean, kPose };
enum class EvalPositions { kOrdinary, kSpread };

inline constexpr EnumName<TrainPositions> kTrainPositionNames[] = {
    {TrainPositions::kOrdinary, "ordinary"},
    {TrainPositions::kRandom, "random"},
    {TrainPositions::kEqualMean, "equal_mean"},
    {TrainPositions::kPose, "pose"}};
inline constexpr EnumName<EvalPositions> kEvalPositionNames[] = {{EvalPositions::kOrdinary, "ordinary"},
                                                                 {EvalPositions::kSpread, "spread"}};

struct PositionSampling {
  TrainPositions train = TrainPositions::kOrdinary;
  int64_t range = 0;  // random / pose / spread: positions in [0, range); 0 means 8 x train_length
  int64_t chunks = 2;  // pose: pieces of the window (PoSE's N; 2 in its code)
  EvalPositions eval = EvalPositions::kOrdinary;
};

// Throws UserError("position_sampling.<key>: ...") when one of `schemes` cannot take the sampled
// positions: float positions into a table, positions beyond a scheme's range, or any remapped
// positions under a two-pass scheme (ReRoPE merges by token distance). `training`: check the
// training positions as well as the evaluation ones. Builds no scheme.
void check_position_sampling(const PositionSampling& sampling, const std::vector<PositionConfig>& schemes,
                             const ModelShape& shape, bool training);

}  // namespace extrap
