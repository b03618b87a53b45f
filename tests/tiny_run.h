#pragma once
// Tiny training runs for the tests of training, resume and evaluation: a generated corpus, a
// config small enough to train in milliseconds, and helpers that keep the logger clean.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/files.h"
#include "data/dataset.h"
#include "train/trainer.h"

namespace extrap::test {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::vector<json> read_metrics(const fs::path& file) {
  std::vector<json> lines;
  std::istringstream in(read_text_file(file));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

// A generated corpus, prepared once per test suite, and a tiny config trained on it in milliseconds.
class TinyRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    const std::string suite = ::testing::UnitTest::GetInstance()->current_test_suite()->name();
    root_ = fs::temp_directory_path() / ("extrap_test_" + suite + "_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    write_corpus(root_ / "corpus", 30);
    PrepareOptions prepare;
    prepare.corpus = "text";
    prepare.input = root_ / "corpus";
    prepare.output = root_ / "dataset";
    prepare.seed = 3;
    prepare.val_fraction = 0.1;
    prepare.test_fraction = 0.1;
    prepare_dataset(prepare);

    write_file_atomic(root_ / "tiny.json", tiny_config().dump(2));
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) fs::remove_all(root_);
    root_.clear();
    run_a_.clear();
  }

  // English-like documents of 700-1100 bytes from a small vocabulary and a fixed generator.
  static void write_corpus(const fs::path& dir, int count) {
    static const char* words[] = {"the", "a", "river", "stone", "ran", "over", "quiet", "hills", "and", "then",
                                  "old", "men", "spoke", "of", "rain", "bright", "morning", "we", "saw", "light",
                                  "into", "town", "with", "small", "dogs", "under", "green", "trees", "long", "ago"};
    uint64_t state = 88172645463325252ULL;
    auto next = [&state] {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      return state;
    };
    fs::create_directories(dir);
    for (int d = 0; d < count; ++d) {
      std::string text;
      const std::size_t target = 700 + next() % 400;
      bool sentence_start = true;
      while (text.size() < target) {
        std::string word = words[next() % (sizeof words / sizeof *words)];
        if (sentence_start) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
        text += word;
        sentence_start = next() % 9 == 0;
        text += sentence_start ? ".\n" : " ";
      }
      char name[32];
      std::snprintf(name, sizeof name, "doc%02d.txt", d);
      std::ofstream(dir / name, std::ios::binary) << text << ".\n";
    }
  }

  static json tiny_config() {
    return {{"seed", 7},
            {"model", {{"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}, {"dropout", 0.1}}},
            {"position", {{"scheme", "rope"}}},
            {"data", {{"dataset", (root_ / "dataset").string()}, {"train_length", 32}}},
            {"train",
             {{"batch_size", 4}, {"steps", 8}, {"warmup_steps", 2}, {"checkpoint_interval", 4}, {"eval_interval", 4},
              {"log_interval", 1}, {"keep_checkpoints", 10}, {"eval_tokens", 512}}}};
  }

  // train() adds a file sink for RUN/train.log to the default logger and never removes it; keep
  // the logger's sinks as they were so that one run's log does not collect the lines of later runs.
  static void train_quietly(const TrainOptions& options) {
    auto& sinks = spdlog::default_logger()->sinks();
    const auto saved = sinks;
    try {
      train(options);
    } catch (...) {
      sinks = saved;
      throw;
    }
    sinks = saved;
  }

  static void train_run(const fs::path& out, const std::vector<std::string>& overrides = {}) {
    TrainOptions options;
    options.config_path = (root_ / "tiny.json").string();
    options.overrides = overrides;
    options.out = out;
    train_quietly(options);
  }

  // Resumes `run` as if it had stopped right after its step-4 checkpoint (its step-8 one and DONE
  // removed).
  static void resume_from_step_4(const fs::path& run) {
    fs::remove(run / "DONE");
    fs::remove_all(run / "checkpoints" / "step_00000008");
    TrainOptions options;
    options.out = run;
    options.resume = true;
    train_quietly(options);
  }

  // The step-8 model and optimizer files of two runs are byte-identical.
  static void expect_same_final_checkpoint(const fs::path& a, const fs::path& b) {
    for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
      EXPECT_TRUE(read_text_file(a / "checkpoints" / "step_00000008" / file) ==
                  read_text_file(b / "checkpoints" / "step_00000008" / file))
          << file << " differs";
    }
  }

  // The reference run, trained straight through once per process.
  static const fs::path& run_a() {
    if (run_a_.empty()) {
      run_a_ = root_ / "run_a";
      train_run(run_a_);
    }
    return run_a_;
  }

  static inline fs::path root_;
  static inline fs::path run_a_;
};

}  // namespace extrap::test
