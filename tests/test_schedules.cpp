// Training schedules of position information: DroPE (every position encoding dropped for the last
// fraction of the steps) and PoSE position skipping (the window cut into pieces shifted by random
// skips).
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "test_helpers.h"
#include "tiny_run.h"

#include "common/files.h"
#include "config/config.h"
#include "model/gpt.h"
#include "position/sampling.h"

namespace extrap {
namespace {

using test::contains;
using test::kCpu;
using test::max_abs_diff;
using test::user_error_message;
namespace fs = std::filesystem;
using nlohmann::json;

json small_config(const json& position, const json& train = json::object()) {
  return {{"model", {{"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}, {"vocab_size", 64}}},
          {"data", {{"dataset", "/nonexistent"}, {"train_length", 16}}},
          {"position", position},
          {"train", train}};
}

// A dropped RoPE or learned-table model is NoPE with the same weights.
TEST(DropPositions, ADroppedModelIsNopeWithTheSameWeights) {
  torch::NoGradGuard no_grad;
  const auto tokens = torch::randint(64, {2, 16}, torch::kInt64);
  const auto positions = Positions::arange(16, kCpu);
  torch::manual_seed(81);
  GPT nope = build_model(config_from_json(small_config({{"scheme", "nope"}}), "c"));
  for (const char* scheme : {"rope", "learned", "alibi"}) {
    SCOPED_TRACE(scheme);
    torch::manual_seed(81);
    GPT model = build_model(config_from_json(small_config({{"scheme", scheme}}), "c"));
    {
      const auto from = nope->named_parameters();
      for (auto& p : model->named_parameters()) {
        if (from.contains(p.key())) p.value().copy_(from[p.key()]);
      }
    }
    EXPECT_FALSE(model->positions_dropped());
    EXPECT_GT(max_abs_diff(model->forward(tokens, positions), nope->forward(tokens, positions)), 1e-4);
    model->set_positions_dropped(true);
    EXPECT_LT(max_abs_diff(model->forward(tokens, positions), nope->forward(tokens, positions)), 1e-6);
  }
  // A model built from a DroPE run's config is built dropped: that is how it finished training.
  const RunConfig drope = config_from_json(small_config({{"scheme", "rope"}}, {{"drop_positions", 0.25}}), "c");
  EXPECT_TRUE(build_model(drope)->positions_dropped());
  EXPECT_EQ(drope.train.drop_from_step(), 300 - 75);
}

TEST(DropPositions, TheFractionMustBeBelowOne) {
  for (const double bad : {1.0, -0.1, 1.5}) {
    EXPECT_TRUE(contains(user_error_message([&] {
                           config_from_json(small_config({{"scheme", "rope"}}, {{"drop_positions", bad}}), "c.json");
                         }),
                         "c.json: train.drop_positions: must be in [0, 1)"))
        << bad;
  }
}

class DropeRun : public test::TinyRunTest {};

// The last half of an 8-step run trains without positions; a resume across the switch is exact.
TEST_F(DropeRun, TheLastStepsTrainWithoutPositionsAndResumeIsExact) {
  const fs::path whole = root_ / "drope_whole", resumed = root_ / "drope_resumed";
  train_run(whole, {"train.drop_positions=0.5"});
  EXPECT_TRUE(contains(read_text_file(whole / "train.log"),
                       "step 5: dropping every position encoding for the last 4 steps (DroPE)"));
  EXPECT_NE(read_json_file(whole / "DONE").at("val_loss"), read_json_file(run_a() / "DONE").at("val_loss"));
  // Steps 1..4 are the plain run's: the step-4 checkpoints agree byte for byte.
  EXPECT_EQ(read_text_file(whole / "checkpoints" / "step_00000004" / "model.safetensors"),
            read_text_file(run_a() / "checkpoints" / "step_00000004" / "model.safetensors"));
  train_run(resumed, {"train.drop_positions=0.5"});
  resume_from_step_4(resumed);
  expect_same_final_checkpoint(whole, resumed);
}

// PoSE: `chunks` runs of consecutive positions, the first from 0, each shifted by a non-decreasing
// skip, inside [0, range); a different draw per step, the same for the same (seed, step).
TEST(PoseSampling, PiecesOfConsecutivePositionsWithNonDecreasingSkips) {
  PositionSampling pose;
  pose.train = TrainPositions::kPose;
  pose.range = 256;
  std::set<std::vector<double>> draws;
  for (const int64_t chunks : {2, 3, 5}) {
    pose.chunks = chunks;
    for (int64_t step = 0; step < 40; ++step) {
      const auto values = test::to_vector(training_positions(pose, 32, 11, step, kCpu).values);
      ASSERT_EQ(values.size(), 32u);
      EXPECT_EQ(values[0], 0.0);
      EXPECT_LT(values.back(), 256.0);
      int64_t breaks = 0;
      for (std::size_t t = 1; t < values.size(); ++t) {
        ASSERT_GE(values[t] - values[t - 1], 1.0) << "positions must increase";
        if (values[t] - values[t - 1] > 1.0) ++breaks;
      }
      EXPECT_LE(breaks, chunks - 1);  // a zero skip joins two pieces
      EXPECT_EQ(test::to_vector(training_positions(pose, 32, 11, step, kCpu).values), values);
      draws.insert(values);
    }
  }
  EXPECT_GT(draws.size(), 100u);
  // Over many steps the skips reach far: some window ends near the range.
  pose.chunks = 2;
  double farthest = 0;
  for (int64_t step = 0; step < 200; ++step) farthest = std::max(farthest, test::to_vector(training_positions(pose, 32, 11, step, kCpu).values).back());
  EXPECT_GT(farthest, 200.0);
}

TEST(PoseSampling, ConfigChecks) {
  const auto config = [](const json& sampling) {
    json c = small_config({{"scheme", "rope"}});
    c["position_sampling"] = sampling;
    return c;
  };
  EXPECT_EQ(user_error_message([&] { config_from_json(config({{"train", "pose"}, {"chunks", 17}}), "c.json"); }),
            "c.json: position_sampling.chunks: 17 pieces do not fit a window of data.train_length = 16 tokens");
  EXPECT_TRUE(contains(user_error_message([&] { config_from_json(config({{"train", "pose"}, {"chunks", 0}}), "c.json"); }),
                       "position_sampling.chunks"));
  // Table schemes must cover the range, and merged-score schemes refuse remapped positions.
  json learned = config({{"train", "pose"}});
  learned["position"] = {{"scheme", "learned"}};
  EXPECT_TRUE(contains(user_error_message([&] { config_from_json(learned, "c.json"); }), "position_sampling.range"));
  json rerope = config({{"train", "pose"}});
  rerope["position"] = {{"scheme", "rerope"}};
  EXPECT_TRUE(contains(user_error_message([&] { config_from_json(rerope, "c.json"); }), "merges its score passes"));
  config_from_json(config({{"train", "pose"}, {"chunks", 3}, {"range", 64}}), "c.json");
}

}  // namespace
}  // namespace extrap
