#include "position/sampling_config.h"

#include "common/error.h"

namespace extrap {

void check_position_sampling(const PositionSampling& sampling, const std::vector<PositionConfig>& schemes,
                             const ModelShape& shape, bool training) {
  const TrainPositions train = training ? sampling.train : TrainPositions::kOrdinary;
  const std::string train_name = enum_name(kTrainPositionNames, train);
  const std::string eval_name = enum_name(kEvalPositionNames, sampling.eval);
  const auto fail = [](const std::string& key, const std::string& problem) {
    throw UserError("position_sampling." + key + ": " + problem);
  };
  for (const auto& p : schemes) {
    const SchemeInfo& info = find_scheme(p.scheme);
    if (info.integer_positions && train == TrainPositions::kEqualMean) {
      fail("train", p.scheme + " looks positions up in a table and cannot take the float positions of equal_mean "
                               "(use random)");
    }
    const bool remapped_train = train != TrainPositions::kOrdinary;
    if ((info.hooks & kFarPassHook) && (remapped_train || sampling.eval != EvalPositions::kOrdinary)) {
      fail(remapped_train ? "train" : "eval", p.scheme + " merges its score passes by token index, which " +
                                                  (remapped_train ? train_name : eval_name) +
                                                  " positions no longer follow (use ordinary)");
    }
    // Random and spread positions reach range - 1: a scheme with a finite range must cover it.
    const int64_t covered = scheme_max_length(p, shape);
    const bool sampled = train == TrainPositions::kRandom || train == TrainPositions::kPose ||
                         sampling.eval == EvalPositions::kSpread;
    if (sampled && covered > 0 && covered < sampling.range) {
      fail("range", std::to_string(sampling.range) + " exceeds the " + std::to_string(covered) + " positions " +
                        p.scheme + " can represent (lower the range" +
                        (info.integer_positions ? " or raise position.max_positions)" : ")"));
    }
  }
}

}  // namespace extrap
