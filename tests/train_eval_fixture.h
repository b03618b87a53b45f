#pragma once
// The fixture of the end-to-end tests (test_train_eval.cpp, test_eval_runs.cpp): tiny trained runs
// (tiny_run.h), quiet evaluation, and snapshots of run directories.
#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "eval/evaluator.h"
#include "tiny_run.h"

namespace extrap {
namespace fs = std::filesystem;
using nlohmann::json;
// Every file under `dir` (relative path) with its bytes and modification time.
inline std::map<std::string, std::pair<std::string, fs::file_time_type>> snapshot(const fs::path& dir) {
  std::map<std::string, std::pair<std::string, fs::file_time_type>> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string key = fs::relative(entry.path(), dir).string();
    if (entry.is_regular_file()) {
      files[key] = {extrap::read_text_file(entry.path()), fs::last_write_time(entry.path())};
    } else {
      files[key] = {"<dir>", fs::last_write_time(entry.path())};
    }
  }
  return files;
}

class TrainEvalTest : public test::TinyRunTest {
 protected:
  static json eval_quietly(const EvalOptions& options) {
    const auto level = spdlog::default_logger()->level();
    spdlog::default_logger()->set_level(spdlog::level::warn);
    json document;
    try {
      document = evaluate(options);
    } catch (...) {
      spdlog::default_logger()->set_level(level);
      throw;
    }
    spdlog::default_logger()->set_level(level);
    return document;
  }

  static EvalOptions eval_options(const fs::path& run, const std::string& out_name) {
    EvalOptions options;
    options.run_dir = run;
    options.lengths = {32, 64};
    options.split = "test";
    options.max_tokens = 256;
    options.out = root_ / "results" / out_name;
    options.batch_tokens = 128;
    return options;
  }

};

}  // namespace extrap
