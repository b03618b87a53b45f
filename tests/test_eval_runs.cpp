// End to end, continued: every protocol, report schema upgrades, KERPLE checkpoints, treatments and
// dynamic scaling on tiny trained runs (fixture: train_eval_fixture.h).
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
using test::user_error_message;

namespace fs = std::filesystem;
using nlohmann::json;



TEST_F(TrainEvalTest, EvaluateEveryProtocol) {
  auto options = eval_options(run_a(), "protocols.json");
  options.protocols = {ProtocolKind::kNonoverlap, ProtocolKind::kSliding, ProtocolKind::kSuffix, ProtocolKind::kRepeated};
  const json document = eval_quietly(options);
  EXPECT_NO_THROW(validate_results(document, "protocols.json"));
  EXPECT_EQ(load_results(root_ / "results" / "protocols.json"), document);
  ASSERT_EQ(document.at("protocols").size(), 4u);
  const json& suffix = document.at("protocols")[2];
  EXPECT_EQ(suffix.at("name"), "suffix");
  EXPECT_EQ(suffix.at("suffix_targets"), 32);  // the training length
  EXPECT_EQ(suffix.at("source"), "documents");
  EXPECT_EQ(suffix.at("sample_tokens"), 65);
  const int64_t samples = suffix.at("samples").get<int64_t>();
  EXPECT_EQ(samples, std::min<int64_t>(suffix.at("available_samples").get<int64_t>(), 256 / 32));
  EXPECT_GE(samples, 1);
  EXPECT_EQ(suffix.at("tokens_scored"), samples * 32);

  const auto& results = document.at("results");
  ASSERT_EQ(results.size(), 8u);  // protocol-major: 4 protocols x lengths 32, 64
  std::map<std::pair<std::string, int64_t>, json> rows;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& entry = results[i];
    EXPECT_EQ(entry.at("protocol"), document.at("protocols")[i / 2].at("name"));
    EXPECT_EQ(entry.at("length"), i % 2 == 0 ? 32 : 64);
    ASSERT_EQ(entry.at("status"), "ok") << entry;
    EXPECT_TRUE(std::isfinite(entry.at("nll").get<double>()));
    int64_t bucket_tokens = 0;
    for (const auto& bucket : entry.at("position_buckets")) bucket_tokens += bucket.at("tokens").get<int64_t>();
    EXPECT_EQ(bucket_tokens, entry.at("tokens").get<int64_t>()) << entry.at("protocol");
    rows[{entry.at("protocol").get<std::string>(), entry.at("length").get<int64_t>()}] = entry;
  }
  for (int64_t length : {32, 64}) {
    SCOPED_TRACE(length);
    const json& sliding = rows.at({"sliding", length});
    EXPECT_EQ(sliding.at("stride"), length / 2);
    EXPECT_EQ(sliding.at("first_scored_target"), length / 2);
    EXPECT_EQ(sliding.at("tokens"), 256 - length / 2);
    // Positions before length - stride are never scored.
    for (const auto& bucket : sliding.at("position_buckets")) {
      if (bucket.at("end").get<int64_t>() <= length / 2) {
        EXPECT_EQ(bucket.at("tokens"), 0);
      }
    }
    EXPECT_EQ(rows.at({"suffix", length}).at("tokens"), samples * 32);
    EXPECT_EQ(rows.at({"suffix", length}).at("windows"), samples);
    const json& repeated = rows.at({"repeated", length});
    const int64_t h = length / 2;
    EXPECT_EQ(repeated.at("copy_offset"), h);
    EXPECT_EQ(repeated.at("tokens"), 256);
    const int64_t windows = repeated.at("windows").get<int64_t>();
    EXPECT_EQ(windows, 256 / length);
    EXPECT_EQ(repeated.at("natural").at("tokens"), windows * (h - 1));
    EXPECT_EQ(repeated.at("copy").at("tokens"), windows * (length - h + 1));
    const double whole = repeated.at("nll").get<double>() * 256;
    const double parts = repeated.at("natural").at("nll").get<double>() * double(windows * (h - 1)) +
                         repeated.at("copy").at("nll").get<double>() * double(windows * (length - h + 1));
    EXPECT_NEAR(whole, parts, 1e-6 * whole);
  }
  // At length 32 = the suffix targets, the suffix window is exactly the scored targets with no
  // extra context; at 64 the same targets get 32 more tokens of context.
  EXPECT_EQ(rows.at({"suffix", 32}).at("position_buckets").back().at("tokens"), samples * 16);

  // Sliding with stride = length is the nonoverlap protocol.
  options = eval_options(run_a(), "sliding_full_stride.json");
  options.protocols = {ProtocolKind::kSliding};
  options.protocol_params.stride = 32;
  options.lengths = {32};
  const json full_stride = eval_quietly(options);
  EXPECT_EQ(full_stride.at("results")[0].at("tokens"), 256);
  EXPECT_NEAR(full_stride.at("results")[0].at("nll").get<double>(), rows.at({"nonoverlap", 32}).at("nll").get<double>(),
              1e-9);

  // The report shows one column per (length, protocol) and the repeated window's parts.
  const std::string csv = render_report({document}, "acc", TableFormat::Csv);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "run,scheme,train,32 nonoverlap,32 sliding,32 suffix,32 repeated,64 nonoverlap,64 sliding,64 suffix,64 "
            "repeated");
  const std::string copy = render_report({document}, "acc", TableFormat::Csv, "copy");
  char copy32[32];
  std::snprintf(copy32, sizeof copy32, "%.2f%%", 100.0 * rows.at({"repeated", 32}).at("copy").at("accuracy").get<double>());
  EXPECT_TRUE(contains(copy, std::string("tiny,rope,32,-,-,-,") + copy32 + ",")) << copy;
  const std::string table = render_report({document}, "ppl", TableFormat::Terminal);
  for (const char* part : {"protocol nonoverlap: 256 targets", "protocol sliding: stride length/2",
                           "protocol suffix: the same last 32 targets", "protocol repeated"}) {
    EXPECT_TRUE(contains(table, part)) << part << " missing from:\n" << table;
  }
  EXPECT_TRUE(contains(user_error_message([&] { render_report({document}, "ppl", TableFormat::Csv, "tail"); }),
                       "--part"));
}

TEST_F(TrainEvalTest, ProtocolErrorsComeBeforeAnyWork) {
  auto options = eval_options(run_a(), "bad_protocol.json");
  options.protocols = {ProtocolKind::kSuffix};
  options.lengths = {32, 4096};  // the generated documents have at most ~1100 tokens
  const std::string message = user_error_message([&] { eval_quietly(options); });
  EXPECT_TRUE(contains(message, "length 4096")) << message;
  EXPECT_TRUE(contains(message, "the longest of the 3 (doc")) << message;
  options.protocols = {ProtocolKind::kSliding};
  options.lengths = {32};
  options.protocol_params.stride = 33;
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(options); }), "--stride 33 is not in [1, 32]"));
  EXPECT_FALSE(fs::exists(root_ / "results" / "bad_protocol.json"));
}

TEST_F(TrainEvalTest, ReportReadsTheFirstSchema) {
  const json current = eval_quietly(eval_options(run_a(), "v2.json"));
  // The same results as extrap.eval/1 wrote them: one top-level protocol, rows without a protocol.
  json old = current;
  old["schema"] = "extrap.eval/1";
  old["protocol"] = current["protocols"][0];
  old["protocol"]["train_length"] = 32;
  old.erase("protocols");
  old.erase("treatments");
  for (auto& entry : old["results"]) {
    entry.erase("protocol");
    entry.erase("treatment");
  }
  const fs::path file = root_ / "results" / "v1.json";
  write_json_atomic(file, old);
  const json upgraded = load_results(file);
  EXPECT_EQ(upgraded.at("upgraded_from"), "extrap.eval/1");
  json without_note = upgraded;
  without_note.erase("upgraded_from");
  // The upgrade cannot resolve the baseline's layers; everything else is as written today.
  EXPECT_EQ(without_note["treatments"], json::array({{{"name", "baseline"}, {"overlay", json::object()}}}));
  without_note["treatments"] = current["treatments"];
  EXPECT_EQ(without_note, current);
  EXPECT_EQ(render_report({upgraded}, "ppl", TableFormat::Csv), render_report({current}, "ppl", TableFormat::Csv));
  // validate_results itself names the schema it expects.
  EXPECT_TRUE(contains(user_error_message([&] { validate_results(old, "v1.json"); }), "expected extrap.eval/3"));
}

// One run under several inference-time treatments: a row per (treatment, protocol, length); a
// derived extension factor is 1 at the training length, so PI, YaRN and dynamic NTK reproduce the
// untreated model exactly there and change it only beyond.
// KERPLE's constraints (r1 >= 0.01; power: 0.01 <= r2 <= 2) hold in every checkpoint, even when a
// large learning rate throws the parameters far outside after each update (validation, which would
// also project them, does not run at the step-4 checkpoint).
TEST_F(TrainEvalTest, KerpleCheckpointsHoldConstrainedParameters) {
  const fs::path run = root_ / "kerple_power";
  train_run(run, {"position.scheme=kerple", "position.variant=power", "train.lr=5.0", "train.warmup_steps=0",
                  "train.grad_clip=0", "train.eval_interval=3"});
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(run / "checkpoints")) {
    const auto tensors = load_safetensors(entry.path() / "model.safetensors");
    const auto& r1 = tensors.at("position.r1");
    const auto& r2 = tensors.at("position.r2");
    EXPECT_GE(r1.min().item<double>(), Kerple::kEps - 1e-7) << entry.path();
    EXPECT_GE(r2.min().item<double>(), Kerple::kEps - 1e-7) << entry.path();
    EXPECT_LE(r2.max().item<double>(), 2.0 + 1e-7) << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

TEST_F(TrainEvalTest, EvaluateUnderTreatments) {
  const fs::path file = root_ / "treatments.json";
  write_file_atomic(file, R"({"treatments": [
    {"name": "PI", "position": {"scaling": "pi"}},
    {"name": "YaRN", "position": {"scaling": "yarn"}},
    {"name": "dynamic-NTK", "position": {"scaling": "dynamic_ntk"}}]})");
  auto options = eval_options(run_a(), "treatments.json");
  options.protocols = {ProtocolKind::kNonoverlap, ProtocolKind::kRepeated};
  options.treatment_files = {file.string()};
  const json document = eval_quietly(options);
  EXPECT_NO_THROW(validate_results(document, "treatments.json"));
  EXPECT_EQ(load_results(root_ / "results" / "treatments.json"), document);

  const std::vector<std::string> names{"baseline", "PI", "YaRN", "dynamic-NTK"};
  ASSERT_EQ(document.at("treatments").size(), names.size());
  for (std::size_t t = 0; t < names.size(); ++t) {
    const json& treatment = document.at("treatments")[t];
    EXPECT_EQ(treatment.at("name"), names[t]);
    ASSERT_EQ(treatment.at("layers").size(), 2u);  // resolved per layer
    for (const auto& layer : treatment.at("layers")) {
      EXPECT_EQ(layer.at("position").at("scheme"), "rope");
      EXPECT_EQ(layer.at("position").at("scaling"), t == 0 ? json("none") : treatment.at("overlay")["position"]["scaling"]);
      EXPECT_EQ(layer.at("attention").at("logn"), "none");
    }
    EXPECT_EQ(treatment.at("position_sampling").at("eval"), "ordinary");
  }
  EXPECT_EQ(document.at("treatments")[0].at("overlay"), json::object());

  // Treatment-major, then protocol, then length; each combination once.
  const auto& results = document.at("results");
  ASSERT_EQ(results.size(), names.size() * 2 * 2);
  std::map<std::tuple<std::string, std::string, int64_t>, double> nll;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& entry = results[i];
    EXPECT_EQ(entry.at("treatment"), names[i / 4]);
    EXPECT_EQ(entry.at("protocol"), i % 4 < 2 ? "nonoverlap" : "repeated");
    EXPECT_EQ(entry.at("length"), i % 2 == 0 ? 32 : 64);
    ASSERT_EQ(entry.at("status"), "ok") << entry;
    nll[{entry.at("treatment").get<std::string>(), entry.at("protocol").get<std::string>(),
         entry.at("length").get<int64_t>()}] = entry.at("nll").get<double>();
  }
  for (const std::string protocol : {"nonoverlap", "repeated"}) {
    const double base32 = nll.at({"baseline", protocol, 32}), base64 = nll.at({"baseline", protocol, 64});
    for (const std::string treatment : {"PI", "YaRN", "dynamic-NTK"}) {
      SCOPED_TRACE(treatment + " " + protocol);
      EXPECT_DOUBLE_EQ(nll.at({treatment, protocol, 32}), base32);  // s = 1 at the training length
      // s = 2 beyond it. After 8 steps the tiny model hardly uses positions: the change is small,
      // but the same computation would give the same bits.
      EXPECT_GT(std::abs(nll.at({treatment, protocol, 64}) - base64), 1e-9);
    }
  }

  // Su's table from this document: a line per treatment, natural and repeated copy per length.
  const std::string csv = render_report({document}, ReportOptions{"acc", TableFormat::Csv, "", ReportLayout::Su});
  std::istringstream lines(csv);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "treatment,32 natural,32 repeated,64 natural,64 repeated");
  for (std::size_t t = 0; t < names.size(); ++t) {
    std::getline(lines, line);
    const json& copy64 = results[4 * t + 3].at("copy");
    char cell[32];
    std::snprintf(cell, sizeof cell, ",%.2f%%", 100.0 * copy64.at("accuracy").get<double>());
    EXPECT_EQ(line.rfind(names[t] + ",", 0), 0u) << line;
    EXPECT_TRUE(line.size() >= std::strlen(cell) && line.substr(line.size() - std::strlen(cell)) == cell) << line;
  }

  // A treatment that does not fit the model stops the evaluation before any work.
  write_file_atomic(file, R"({"name": "bad", "position": {"scheme": "alibi"}})");
  options.out = root_ / "results" / "bad_treatment.json";
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(options); }), "treatment \"bad\".position.scheme"));
  EXPECT_FALSE(fs::exists(options.out));
}

// Dynamic scaling (docs/results.md "Dynamic scaling"): the first L_train positions are the
// untreated model's, and with one piece beyond them (step = L - L_train) the rest is the static
// scaling at L.
TEST_F(TrainEvalTest, DynamicScalingFollowsThePosition) {
  const fs::path file = root_ / "dynamic.json";
  write_file_atomic(file, R"({"treatments": [
    {"name": "NTK-aware", "position": {"scaling": "ntk_aware"}},
    {"name": "dynamic-NTK", "position": {"scaling": "dynamic_ntk"}},
    {"name": "dynamic-NTK-static", "position": {"scaling": "dynamic_ntk"}, "dynamic": false},
    {"name": "dynamic-PI", "position": {"scaling": "pi"}, "dynamic": 16}]})");
  // Trained long enough to use positions, so frequency changes move the loss measurably.
  const fs::path run = root_ / "rope_150";
  train_run(run, {"train.steps=150", "train.lr=0.01", "model.dropout=0", "train.eval_interval=150",
                  "train.checkpoint_interval=150"});
  auto options = eval_options(run, "dynamic.json");
  options.lengths = {32, 64, 128};
  options.treatment_files = {file.string()};
  const json document = eval_quietly(options);
  EXPECT_EQ(document.at("complete"), true);
  std::map<std::pair<std::string, int64_t>, json> rows;
  for (const auto& row : document.at("results")) {
    ASSERT_EQ(row.at("status"), "ok") << row;
    rows[{row.at("treatment").get<std::string>(), row.at("length").get<int64_t>()}] = row;
  }
  const std::vector<int64_t> steps{0, 0, 32, 0, 16};
  for (std::size_t t = 0; t < steps.size(); ++t) EXPECT_EQ(document["treatments"][t].at("dynamic_step"), steps[t]);

  // Per-bucket NLL over positions [0, 32) at a length.
  const auto early = [&](const std::string& treatment, int64_t length) {
    std::vector<double> nll;
    for (const auto& bucket : rows.at({treatment, length}).at("position_buckets")) {
      if (bucket.at("end").get<int64_t>() <= 32) nll.push_back(bucket.at("nll").get<double>());
    }
    return nll;
  };
  double static_shift = 0.0;
  for (int64_t length : {64, 128}) {
    SCOPED_TRACE(length);
    const auto base = early("baseline", length), dynamic = early("dynamic-NTK", length), pi = early("dynamic-PI", length);
    const auto fixed = early("NTK-aware", length);
    ASSERT_EQ(base.size(), 6u);
    for (std::size_t b = 0; b < base.size(); ++b) {
      EXPECT_NEAR(dynamic[b], base[b], 1e-6) << "bucket " << b;
      EXPECT_NEAR(pi[b], base[b], 1e-6) << "bucket " << b;
      static_shift = std::max(static_shift, std::abs(fixed[b] - base[b]));
    }
  }
  // The static scaling does change those positions (the extrapolation tax dynamic scaling avoids),
  // by far more than the tolerance above: otherwise this test could not tell the two apart.
  EXPECT_GT(static_shift, 1e-4);

  const auto beyond = [&](const std::string& treatment, int64_t length) {
    return rows.at({treatment, length}).at("beyond_train").at("nll").get<double>();
  };
  // At 64 the dynamic model has one piece past L_train, built for 64 tokens: NTK-aware at s = 2.
  EXPECT_DOUBLE_EQ(beyond("dynamic-NTK", 64), beyond("NTK-aware", 64));
  // At 128 the factor grows over three pieces, so it differs from one static factor of 4.
  EXPECT_GT(std::abs(beyond("dynamic-NTK", 128) - beyond("NTK-aware", 128)), 1e-6);
  // "dynamic": false is the locally static form, which for dynamic_ntk is ntk_aware.
  for (int64_t length : {32, 64, 128}) {
    EXPECT_DOUBLE_EQ(rows.at({"dynamic-NTK-static", length}).at("nll").get<double>(),
                     rows.at({"NTK-aware", length}).at("nll").get<double>());
  }
  // At or below the training length dynamic scaling is the untreated model.
  EXPECT_DOUBLE_EQ(rows.at({"dynamic-NTK", 32}).at("nll").get<double>(), rows.at({"baseline", 32}).at("nll").get<double>());

  // Pieces with no scored target are skipped and the rest add up to the plan under every protocol
  // (the evaluator throws if a target were scored twice or missed). Suffix scores only the last
  // L_train = 32 positions: the last piece, built for the whole window, i.e. static NTK-aware.
  options.protocols = {ProtocolKind::kSliding, ProtocolKind::kSuffix, ProtocolKind::kRepeated};
  options.treatment_files = {file.string()};
  options.out = root_ / "results" / "dynamic_protocols.json";
  const json protocols = eval_quietly(options);
  std::map<std::tuple<std::string, std::string, int64_t>, double> nll;
  for (const auto& row : protocols.at("results")) {
    ASSERT_EQ(row.at("status"), "ok") << row;
    nll[{row.at("treatment").get<std::string>(), row.at("protocol").get<std::string>(),
         row.at("length").get<int64_t>()}] = row.at("nll").get<double>();
  }
  for (int64_t length : {32, 64, 128}) {
    EXPECT_DOUBLE_EQ(nll.at({"dynamic-NTK", "suffix", length}), nll.at({"NTK-aware", "suffix", length})) << length;
  }
  EXPECT_GT(std::abs(nll.at({"dynamic-NTK", "repeated", 128}) - nll.at({"NTK-aware", "repeated", 128})), 1e-6);
}

}  // namespace
}  // namespace extrap
