// End to end: prepare a generated corpus, train tiny runs, evaluate them at several lengths and
// render reports; plus the evaluation protocol and the batch sampler (resume: test_resume.cpp).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "test_helpers.h"
#include "tiny_run.h"
#include "train_eval_fixture.h"
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/files.h"
#include "data/batch_sampler.h"
#include "data/dataset.h"
#include "eval/evaluator.h"
#include "eval/protocol.h"
#include "report/results.h"
#include "report/tables.h"
#include "position/kerple.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace extrap {
namespace {

using test::contains;
using test::read_metrics;
using test::user_error_message;

namespace fs = std::filesystem;
using nlohmann::json;



// ---- Batch sampling ---------------------------------------------------------------------------

TEST(WindowOffset, IsDeterministicAndInRange) {
  std::set<int64_t> seen;
  for (int64_t step = 0; step < 50; ++step) {
    for (int64_t row = 0; row < 20; ++row) {
      const int64_t offset = window_offset(1234, step, row, 10);
      ASSERT_GE(offset, 0);
      ASSERT_LT(offset, 10);
      ASSERT_EQ(offset, window_offset(1234, step, row, 10));
      seen.insert(offset);
    }
  }
  EXPECT_EQ(seen.size(), 10u);  // 1000 draws hit every offset
  EXPECT_EQ(window_offset(7, 3, 2, 1), 0);
  // Different seeds, steps and rows give different windows.
  int seed_diff = 0, step_diff = 0, row_diff = 0;
  for (int64_t i = 0; i < 100; ++i) {
    seed_diff += window_offset(1, i, 0, 1000000) != window_offset(2, i, 0, 1000000);
    step_diff += window_offset(1, i, 0, 1000000) != window_offset(1, i + 1, 0, 1000000);
    row_diff += window_offset(1, i, 0, 1000000) != window_offset(1, i, 1, 1000000);
  }
  EXPECT_GE(seed_diff, 95);
  EXPECT_GE(step_diff, 95);
  EXPECT_GE(row_diff, 95);
}

// ---- Evaluation protocol ----------------------------------------------------------------------

TEST(EvalProtocol, NonoverlapWindowsScoreEveryTargetOnce) {
  const int64_t tokens = 100;
  for (int64_t length : {7, 10, 32, 100}) {
    SCOPED_TRACE(length);
    const auto windows = nonoverlap_windows(tokens, length);
    EXPECT_EQ(int64_t(windows.size()), (tokens + length - 1) / length);
    std::vector<int> scored(tokens, 0);
    for (const auto& w : windows) {
      ASSERT_GE(w.start, 0);
      ASSERT_LE(w.start + length, tokens);  // every window has the full length
      ASSERT_GE(w.score_from, 0);
      ASSERT_LT(w.score_from, length);
      for (int64_t p = w.score_from; p < length; ++p) ++scored[w.start + p];
    }
    for (int64_t t = 0; t < tokens; ++t) EXPECT_EQ(scored[t], 1) << "target " << t;
  }
  // The tail window of length 32 ends at the end and scores only the last 4 targets.
  const auto tail = nonoverlap_windows(100, 32).back();
  EXPECT_EQ(tail.start, 68);
  EXPECT_EQ(tail.score_from, 28);
}

TEST(EvalProtocol, PositionBucketsCoverEveryPosition) {
  for (int64_t length : {1, 2, 7, 10, 32, 64, 100}) {
    SCOPED_TRACE(length);
    const auto buckets = position_buckets(length);
    ASSERT_FALSE(buckets.empty());
    EXPECT_EQ(buckets.front().first, 0);
    EXPECT_EQ(buckets.front().second, 1);
    EXPECT_EQ(buckets.back().second, length);
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      EXPECT_LT(buckets[i].first, buckets[i].second);
      if (i > 0) {
        EXPECT_EQ(buckets[i].first, buckets[i - 1].second);
      }
      if (i > 0 && buckets[i].second < length) {
        EXPECT_EQ(buckets[i].second, 2 * buckets[i].first);  // log-spaced
      }
    }
  }
  EXPECT_EQ(position_buckets(10),
            (std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 2}, {2, 4}, {4, 8}, {8, 10}}));
}

// ---- Train, resume, evaluate, report ----------------------------------------------------------

TEST_F(TrainEvalTest, TrainingWritesACompleteRun) {
  const fs::path& run = run_a();
  for (const char* file : {"config.json", "run.json", "metrics.jsonl", "train.log", "DONE"}) {
    EXPECT_TRUE(fs::is_regular_file(run / file)) << file;
  }
  for (const char* step : {"step_00000004", "step_00000008"}) {
    for (const char* file : {"model.safetensors", "optimizer.safetensors", "state.json"}) {
      EXPECT_TRUE(fs::is_regular_file(run / "checkpoints" / step / file)) << step << "/" << file;
    }
  }
  const auto metrics = read_metrics(run / "metrics.jsonl");
  int train_lines = 0, val_lines = 0;
  for (const auto& line : metrics) {
    if (line.contains("loss")) {
      ++train_lines;
      EXPECT_EQ(line.at("step"), train_lines);
      EXPECT_TRUE(std::isfinite(line.at("loss").get<double>()));
    }
    if (line.contains("val_loss")) ++val_lines;
  }
  EXPECT_EQ(train_lines, 8);
  EXPECT_EQ(val_lines, 2);
  // A byte-level model starts near ln(257) and learns a little in 8 steps.
  EXPECT_GT(metrics.front().at("loss").get<double>(), 4.5);
  EXPECT_EQ(read_json_file(run / "DONE").at("step"), 8);
  EXPECT_EQ(read_json_file(run / "config.json").at("train").at("steps"), 8);
}

TEST_F(TrainEvalTest, OnlyTheNewestCheckpointsAreKept) {
  const fs::path run = root_ / "run_pruned";
  train_run(run, {"train.keep_checkpoints=2", "train.checkpoint_interval=2", "train.eval_interval=8"});
  std::set<std::string> kept;
  for (const auto& entry : fs::directory_iterator(run / "checkpoints")) kept.insert(entry.path().filename().string());
  EXPECT_EQ(kept, (std::set<std::string>{"step_00000006", "step_00000008"}));
  EXPECT_EQ(read_json_file(run / "checkpoints" / "step_00000008" / "state.json").at("step"), 8);
}

TEST_F(TrainEvalTest, RetrainingIntoAnExistingRunIsRefused) {
  const fs::path& run = run_a();
  const auto before = snapshot(run);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a rewrite would show in the mtimes
  const std::string message = user_error_message([&] { train_run(run); });
  EXPECT_TRUE(contains(message, run.string())) << message;
  EXPECT_TRUE(contains(message, "--resume")) << message;
  EXPECT_TRUE(snapshot(run) == before) << "the run directory was modified";

  // A non-empty directory that is not a run is refused too.
  const fs::path other = root_ / "not_a_run";
  fs::create_directories(other);
  write_file_atomic(other / "notes.txt", "keep me");
  EXPECT_TRUE(contains(user_error_message([&] { train_run(other); }), "not an extrap run"));
  EXPECT_EQ(read_text_file(other / "notes.txt"), "keep me");
  EXPECT_FALSE(fs::exists(other / "config.json"));
}

TEST_F(TrainEvalTest, EvaluateAtTwoLengths) {
  const json document = eval_quietly(eval_options(run_a(), "rope.json"));
  EXPECT_NO_THROW(validate_results(document, "rope.json"));
  EXPECT_EQ(load_results(root_ / "results" / "rope.json"), document);  // the file written is the document
  EXPECT_EQ(document.at("run").at("checkpoint_step"), 8);
  EXPECT_EQ(document.at("data").at("split"), "test");
  EXPECT_EQ(document.at("data").at("trained_on_same_dataset"), true);
  ASSERT_EQ(document.at("protocols").size(), 1u);
  EXPECT_EQ(document.at("protocols")[0].at("name"), "nonoverlap");
  EXPECT_EQ(document.at("protocols")[0].at("tokens_scored"), 256);
  const auto& results = document.at("results");
  ASSERT_EQ(results.size(), 2u);
  for (const auto& entry : results) {
    const int64_t length = entry.at("length").get<int64_t>();
    SCOPED_TRACE(length);
    ASSERT_EQ(entry.at("status"), "ok");
    EXPECT_EQ(entry.at("protocol"), "nonoverlap");
    EXPECT_EQ(entry.at("tokens"), 256);
    EXPECT_EQ(entry.at("windows"), 256 / length);
    const double nll = entry.at("nll").get<double>();
    EXPECT_TRUE(std::isfinite(nll));
    EXPECT_GT(nll, 0.0);
    EXPECT_NEAR(entry.at("ppl").get<double>(), std::exp(nll), 1e-9 * std::exp(nll));
    EXPECT_GE(entry.at("accuracy").get<double>(), 0.0);
    EXPECT_LE(entry.at("accuracy").get<double>(), 1.0);
    int64_t bucket_tokens = 0, expected_begin = 0;
    for (const auto& bucket : entry.at("position_buckets")) {
      EXPECT_EQ(bucket.at("begin"), expected_begin);
      expected_begin = bucket.at("end").get<int64_t>();
      EXPECT_EQ(bucket.at("tokens"), (bucket.at("end").get<int64_t>() - bucket.at("begin").get<int64_t>()) *
                                         entry.at("windows").get<int64_t>());
      bucket_tokens += bucket.at("tokens").get<int64_t>();
    }
    EXPECT_EQ(expected_begin, length);
    EXPECT_EQ(bucket_tokens, 256);
  }
  EXPECT_FALSE(results[0].contains("beyond_train"));
  ASSERT_TRUE(results[1].contains("beyond_train"));
  const json& beyond = results[1].at("beyond_train");
  EXPECT_EQ(beyond.at("tokens"), 128);  // positions 32..63 of 4 windows
  // Positions 32..63 are exactly the last log-spaced bucket of length 64.
  const json& last_bucket = results[1].at("position_buckets").back();
  ASSERT_EQ(last_bucket.at("begin"), 32);
  EXPECT_DOUBLE_EQ(beyond.at("nll").get<double>(), last_bucket.at("nll").get<double>());
  EXPECT_DOUBLE_EQ(beyond.at("accuracy").get<double>(), last_bucket.at("accuracy").get<double>());
  // The overall nll is the token-weighted mean of the buckets'.
  double weighted = 0;
  for (const auto& bucket : results[1].at("position_buckets")) {
    weighted += bucket.at("nll").get<double>() * bucket.at("tokens").get<double>();
  }
  EXPECT_NEAR(weighted / 256.0, results[1].at("nll").get<double>(), 1e-9);

  // Windows per forward pass is a speed knob only.
  auto options = eval_options(run_a(), "rope_batched.json");
  options.batch_tokens = 1;
  const json one_window = eval_quietly(options);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(one_window["results"][i]["nll"].get<double>(), results[i]["nll"].get<double>(), 1e-6);
  }
}

TEST_F(TrainEvalTest, LearnedPositionsAreUnsupportedBeyondTheirTable) {
  const fs::path run = root_ / "run_learned";
  train_run(run, {"position.scheme=learned", "train.steps=2", "name=learned_run"});
  const json document = eval_quietly(eval_options(run, "learned.json"));
  EXPECT_NO_THROW(validate_results(document, "learned.json"));
  const auto& results = document.at("results");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("length"), 32);
  EXPECT_EQ(results[0].at("status"), "ok");
  EXPECT_EQ(results[0].at("tokens"), 256);
  EXPECT_EQ(results[1].at("length"), 64);
  EXPECT_EQ(results[1].at("status"), "unsupported");
  EXPECT_TRUE(contains(results[1].at("error").get<std::string>(), "learned")) << results[1];
  EXPECT_FALSE(results[1].contains("nll"));
}

TEST_F(TrainEvalTest, EvaluateNeedsACheckpoint) {
  const fs::path run = root_ / "untrained";
  fs::create_directories(run);
  fs::copy_file(run_a() / "config.json", run / "config.json");
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(eval_options(run, "none.json")); }), "no checkpoint"));
  fs::remove(run / "config.json");
  EXPECT_TRUE(
      contains(user_error_message([&] { eval_quietly(eval_options(run, "none.json")); }), "not a run directory"));
  EXPECT_FALSE(fs::exists(root_ / "results" / "none.json"));
}

TEST_F(TrainEvalTest, ReportRendersEveryFormat) {
  const json rope = eval_quietly(eval_options(run_a(), "report_rope.json"));
  const fs::path learned_run = root_ / "run_report_learned";
  train_run(learned_run, {"position.scheme=learned", "train.steps=2", "name=learned_report"});
  const json learned = eval_quietly(eval_options(learned_run, "report_learned.json"));
  char ppl32[32];
  std::snprintf(ppl32, sizeof ppl32, "%.2f", rope["results"][0]["ppl"].get<double>());

  for (auto format : {TableFormat::Terminal, TableFormat::Markdown, TableFormat::Csv}) {
    SCOPED_TRACE(int(format));
    const std::string table = render_report({rope, learned}, "ppl", format);
    for (const char* part : {"tiny", "learned_report", "rope", "learned", "32", "64", "n/a"}) {
      EXPECT_TRUE(contains(table, part)) << part << " missing from:\n" << table;
    }
    EXPECT_TRUE(contains(table, ppl32)) << ppl32 << " missing from:\n" << table;
  }
  const std::string csv = render_report({rope, learned}, "ppl", TableFormat::Csv);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "run,scheme,train,32,64");
  EXPECT_TRUE(contains(csv, std::string("tiny,rope,32,") + ppl32 + ","));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  const std::string markdown = render_report({rope, learned}, "ppl", TableFormat::Markdown);
  EXPECT_EQ(markdown.rfind("| run", 0), 0u) << markdown;
  char beyond64[32];
  std::snprintf(beyond64, sizeof beyond64, "%.2f", rope["results"][1]["beyond_train"]["ppl"].get<double>());
  EXPECT_EQ(render_report({rope}, "beyond_ppl", TableFormat::Csv),
            std::string("run,scheme,train,32,64\ntiny,rope,32,-,") + beyond64 + "\n");
  EXPECT_TRUE(contains(user_error_message([&] { render_report({rope}, "loss", TableFormat::Csv); }), "--metric"));
}

}  // namespace
}  // namespace extrap
