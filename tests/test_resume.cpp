// Resume, exact and crash-proof: whatever a kill -9 or a power cut leaves in a run directory,
// `--resume` continues the run, and a damaged or foreign checkpoint is one clear line naming the file.
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/files.h"
#include "test_helpers.h"
#include "tiny_run.h"
#include "common/interrupt.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace extrap {
namespace {

using test::contains;
using test::read_metrics;
using test::user_error_message;
namespace fs = std::filesystem;
using nlohmann::json;

class ResumeTest : public test::TinyRunTest {
 protected:
  static void resume(const fs::path& run) {
    TrainOptions options;
    options.out = run;
    options.resume = true;
    train_quietly(options);
  }

  // A finished copy of run_a with DONE removed, so that --resume loads its step-8 checkpoint.
  static fs::path copy_of_run_a(const std::string& name) {
    const fs::path copy = root_ / name;
    fs::copy(run_a(), copy, fs::copy_options::recursive);
    fs::remove(copy / "DONE");
    return copy;
  }

  static fs::path last_checkpoint(const fs::path& run) { return run / "checkpoints" / "step_00000008"; }

  // Rewrites a checkpoint file with `edit` applied to its tensors and metadata.
  template <class Edit>
  static void rewrite(const fs::path& file, Edit&& edit) {
    std::map<std::string, std::string> metadata;
    TensorMap tensors = load_safetensors(file, &metadata);
    edit(tensors, metadata);
    save_safetensors(file, tensors, metadata);
  }
};

// Run `b` trained the same as `a`: the same metrics (but timing) and the same final checkpoint, byte for byte.
void expect_same_training(const fs::path& a, const fs::path& b) {
  const auto metrics_a = read_metrics(a / "metrics.jsonl");
  const auto metrics_b = read_metrics(b / "metrics.jsonl");
  ASSERT_EQ(metrics_a.size(), metrics_b.size());
  for (std::size_t i = 0; i < metrics_a.size(); ++i) {
    SCOPED_TRACE("metrics line " + std::to_string(i));
    EXPECT_EQ(metrics_a[i].at("step"), metrics_b[i].at("step"));
    for (const char* key : {"loss", "val_loss", "lr", "grad_norm"}) {
      ASSERT_EQ(metrics_a[i].contains(key), metrics_b[i].contains(key)) << key;
      if (metrics_a[i].contains(key)) {
        EXPECT_EQ(metrics_a[i][key].get<double>(), metrics_b[i][key].get<double>()) << key;
      }
    }
  }
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    EXPECT_TRUE(read_text_file(a / "checkpoints" / "step_00000008" / file) ==
                read_text_file(b / "checkpoints" / "step_00000008" / file))
        << file << " differs after resume";
  }
  EXPECT_EQ(read_json_file(a / "DONE").at("val_loss"), read_json_file(b / "DONE").at("val_loss"));
}

TEST_F(ResumeTest, ResumeIsBitIdentical) {
  const fs::path& a = run_a();
  const fs::path b = root_ / "run_b";
  train_run(b);
  const fs::path step4 = b / "checkpoints" / "step_00000004";
  const fs::path step8 = b / "checkpoints" / "step_00000008";
  ASSERT_TRUE(fs::is_directory(step4));
  ASSERT_TRUE(fs::is_directory(step8));

  // Pretend the run stopped right after its step-4 checkpoint.
  fs::remove(b / "DONE");
  fs::remove_all(step8);
  const auto metrics_before = read_metrics(b / "metrics.jsonl");
  const auto step4_model_time = fs::last_write_time(step4 / "model.safetensors");
  const std::string step4_model = read_text_file(step4 / "model.safetensors");

  resume(b);

  ASSERT_TRUE(fs::is_directory(step8)) << "the resumed run did not redo steps 5..8";
  EXPECT_TRUE(fs::exists(b / "DONE"));
  EXPECT_TRUE(contains(read_text_file(b / "train.log"), "from step 4"));
  // It continued from the step-4 checkpoint instead of starting over: that checkpoint and the
  // timing-dependent metric lines of steps 1..4 are untouched.
  EXPECT_EQ(fs::last_write_time(step4 / "model.safetensors"), step4_model_time);
  EXPECT_EQ(read_text_file(step4 / "model.safetensors"), step4_model);
  const auto metrics_b = read_metrics(b / "metrics.jsonl");
  std::size_t kept = 0;
  for (const auto& line : metrics_before) {
    if (line.at("step").get<int64_t>() > 4) continue;
    ASSERT_LT(kept, metrics_b.size());
    EXPECT_EQ(metrics_b[kept], line) << "line " << kept;
    ++kept;
  }
  EXPECT_EQ(kept, 5u);  // steps 1..4 and the validation at step 4

  expect_same_training(a, b);
}

// bf16 autocast is deterministic for a given thread count, so resume stays exact; the runs record
// their precision and really compute differently from float32.
TEST_F(ResumeTest, ResumeIsBitIdenticalInBf16) {
  const fs::path whole = root_ / "bf16_whole", resumed = root_ / "bf16_resumed";
  train_run(whole, {"train.precision=bf16"});
  train_run(resumed, {"train.precision=bf16"});
  fs::remove(resumed / "DONE");
  fs::remove_all(resumed / "checkpoints" / "step_00000008");
  resume(resumed);
  expect_same_training(whole, resumed);
  EXPECT_EQ(read_json_file(whole / "config.json").at("train").at("precision"), "bf16");
  EXPECT_EQ(read_json_file(whole / "run.json").at("precision"), "bf16");
  EXPECT_NE(read_json_file(whole / "DONE").at("val_loss"), read_json_file(run_a() / "DONE").at("val_loss"));
}

// What a kill -9 leaves behind: half an appended metrics line and a half-written checkpoint.
TEST_F(ResumeTest, ATornMetricsLineAndAnUnfinishedCheckpointDoNotStopResume) {
  const fs::path& a = run_a();
  const fs::path b = root_ / "run_torn";
  train_run(b);
  fs::remove(b / "DONE");
  fs::remove_all(last_checkpoint(b));
  std::ofstream(b / "metrics.jsonl", std::ios::app) << R"({"step": 12, "lo)";
  const fs::path unfinished = b / "checkpoints" / "step_00000006.tmp";
  write_file_atomic(unfinished / "model.safetensors", "half a file");
  const fs::path foreign = b / "checkpoints" / "notes.tmp";  // not ours: left alone
  fs::create_directories(foreign);

  resume(b);

  EXPECT_TRUE(fs::exists(b / "DONE"));
  EXPECT_FALSE(fs::exists(unfinished));
  EXPECT_TRUE(fs::exists(foreign));
  const std::string log = read_text_file(b / "train.log");
  EXPECT_TRUE(contains(log, "from step 4")) << log;
  EXPECT_TRUE(contains(log, "dropped the torn last line")) << log;
  EXPECT_TRUE(contains(log, "removed " + unfinished.string())) << log;
  expect_same_training(a, b);
}

TEST_F(ResumeTest, ACorruptMetricsLineBeforeTheLastIsAnError) {
  const fs::path run = copy_of_run_a("corrupt_metrics");
  std::string metrics = read_text_file(run / "metrics.jsonl");
  const std::size_t second_line = metrics.find('\n') + 1;
  metrics.insert(second_line, "{\"step\": 1, \"lo\n");
  write_file_atomic(run / "metrics.jsonl", metrics);
  const std::string message = user_error_message([&] { resume(run); });
  EXPECT_TRUE(contains(message, (run / "metrics.jsonl").string() + ": line 2 ")) << message;
  EXPECT_EQ(read_text_file(run / "metrics.jsonl"), metrics) << "the file was changed";
}

TEST_F(ResumeTest, CheckpointTensorsMustMatchTheModel) {
  const fs::path extra = copy_of_run_a("extra_tensor");
  const fs::path extra_file = last_checkpoint(extra) / "model.safetensors";
  rewrite(extra_file, [](TensorMap& tensors, auto&) { tensors["blocks.7.fc.weight"] = torch::zeros({2, 2}); });
  std::string message = user_error_message([&] { resume(extra); });
  EXPECT_TRUE(contains(message, extra_file.string() + ": tensor blocks.7.fc.weight is not part of this model"))
      << message;

  const fs::path missing = copy_of_run_a("missing_tensor");
  const fs::path missing_file = last_checkpoint(missing) / "model.safetensors";
  rewrite(missing_file, [](TensorMap& tensors, auto&) { tensors.erase("ln_f.weight"); });
  message = user_error_message([&] { resume(missing); });
  EXPECT_TRUE(contains(message, missing_file.string() + ": missing tensor ln_f.weight")) << message;

  const fs::path stray = copy_of_run_a("extra_optimizer_state");
  const fs::path stray_file = last_checkpoint(stray) / "optimizer.safetensors";
  rewrite(stray_file, [](TensorMap& tensors, auto&) { tensors["exp_avg.lm_head.weight"] = torch::zeros({2}); });
  message = user_error_message([&] { resume(stray); });
  EXPECT_TRUE(contains(message, stray_file.string() + ": optimizer state exp_avg.lm_head.weight")) << message;
}

// A safetensors file with `header` as its JSON header and `data_bytes` zero bytes of data.
void write_raw_safetensors(const fs::path& file, const json& header, std::size_t data_bytes) {
  const std::string text = header.dump();
  std::string contents;
  for (int i = 0; i < 8; ++i) contents.push_back(char((uint64_t(text.size()) >> (8 * i)) & 0xff));
  write_file_atomic(file, contents + text + std::string(data_bytes, '\0'));
}

TEST_F(ResumeTest, ACorruptCheckpointFileIsAUserErrorNamingIt) {
  const json metadata = {{"format", "extrap.model/1"}};
  const std::map<std::string, json> corrupt = {
      // LibTorch refuses the shape (c10::Error)
      {"negative_shape", json{{"__metadata__", metadata},
                              {"wte.weight", {{"dtype", "F32"}, {"shape", {-4}}, {"data_offsets", {0, 16}}}}}},
      // the JSON is valid but a field is missing (nlohmann::json::out_of_range)
      {"no_dtype", json{{"__metadata__", metadata}, {"wte.weight", {{"shape", {4}}, {"data_offsets", {0, 16}}}}}}};
  for (const auto& [name, header] : corrupt) {
    SCOPED_TRACE(name);
    const fs::path run = copy_of_run_a(name);
    const fs::path file = last_checkpoint(run) / "model.safetensors";
    write_raw_safetensors(file, header, 16);
    const std::string message = user_error_message([&] { resume(run); });
    EXPECT_TRUE(contains(message, file.string() + ": ")) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }

  const fs::path truncated = copy_of_run_a("truncated_optimizer");
  const fs::path file = last_checkpoint(truncated) / "optimizer.safetensors";
  const std::string contents = read_text_file(file);
  write_file_atomic(file, contents.substr(0, contents.size() / 2));
  const std::string message = user_error_message([&] { resume(truncated); });
  EXPECT_TRUE(contains(message, file.string() + ": ")) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
}

TEST_F(ResumeTest, CheckpointFormatTagsAreChecked) {
  struct Case {
    std::string file, format, expected;
  };
  const std::vector<Case> cases = {
      {"model.safetensors", "extrap.model/2", "extrap.model/2: written by a newer extrap (this one reads extrap.model/1)"},
      {"model.safetensors", "safetensors.other/1", "unknown format safetensors.other/1 (this extrap reads extrap.model/1)"},
      {"model.safetensors", "extrap.model/0", "unknown format extrap.model/0"},
      {"model.safetensors", "", "no format tag"},
      {"optimizer.safetensors", "extrap.adamw/3", "extrap.adamw/3: written by a newer extrap (this one reads extrap.adamw/1)"},
      {"optimizer.safetensors", "extrap.model/1", "unknown format extrap.model/1 (this extrap reads extrap.adamw/1)"},
  };
  int index = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file + " tagged " + c.format);
    const fs::path run = copy_of_run_a("format_" + std::to_string(index++));
    const fs::path file = last_checkpoint(run) / c.file;
    rewrite(file, [&](TensorMap&, std::map<std::string, std::string>& metadata) {
      if (c.format.empty()) {
        metadata.erase("format");
      } else {
        metadata["format"] = c.format;
      }
    });
    const std::string message = user_error_message([&] { resume(run); });
    EXPECT_TRUE(contains(message, file.string() + ": ")) << message;
    EXPECT_TRUE(contains(message, c.expected)) << message;
  }
  // The tags as written: what this version reads.
  std::map<std::string, std::string> model_metadata, optimizer_metadata;
  load_safetensors(last_checkpoint(run_a()) / "model.safetensors", &model_metadata);
  load_safetensors(last_checkpoint(run_a()) / "optimizer.safetensors", &optimizer_metadata);
  EXPECT_EQ(model_metadata.at("format"), "extrap.model/1");
  EXPECT_EQ(optimizer_metadata.at("format"), "extrap.adamw/1");
}

// ---- Signals ------------------------------------------------------------------------------------

int g_previous_calls = 0;
void previous_handler(int) { ++g_previous_calls; }

using Handler = void (*)(int);
Handler current_handler(int signal_number) {
  struct sigaction current {};
  sigaction(signal_number, nullptr, &current);
  return current.sa_handler;
}

TEST(InterruptGuard, TheFirstSignalIsRecordedAndThePreviousHandlersComeBack) {
  struct sigaction previous {}, saved_int {}, saved_term {};
  previous.sa_handler = previous_handler;
  sigemptyset(&previous.sa_mask);
  sigaction(SIGINT, &previous, &saved_int);
  sigaction(SIGTERM, &previous, &saved_term);
  {
    InterruptGuard guard;
    EXPECT_EQ(guard.received(), 0);
    ASSERT_EQ(raise(SIGTERM), 0);
    EXPECT_EQ(guard.received(), SIGTERM);
    EXPECT_EQ(current_handler(SIGTERM), SIG_DFL) << "a second SIGTERM must kill at once";
    EXPECT_NE(current_handler(SIGINT), SIG_DFL);
    EXPECT_NE(current_handler(SIGINT), previous_handler);
  }
  EXPECT_EQ(current_handler(SIGINT), previous_handler);
  EXPECT_EQ(current_handler(SIGTERM), previous_handler);
  EXPECT_EQ(g_previous_calls, 0);
  InterruptGuard fresh;
  EXPECT_EQ(fresh.received(), 0) << "a new guard starts clean";
  sigaction(SIGINT, &saved_int, nullptr);
  sigaction(SIGTERM, &saved_term, nullptr);
}

TEST(InterruptGuardDeathTest, ASecondSignalKillsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        InterruptGuard guard;
        raise(SIGINT);
        raise(SIGINT);
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

}  // namespace
}  // namespace extrap
