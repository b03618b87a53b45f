// Documents in packed windows end to end: a tiny run trained with reset positions and document
// masking records them, its evaluation applies them by default and records what it ran with, and
// a treatment can turn them off (fixture: train_eval_fixture.h).
#include <gtest/gtest.h>

#include "test_helpers.h"
#include "train_eval_fixture.h"

#include "config/config.h"
#include "eval/treatment.h"
#include "report/results.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

TEST_F(TrainEvalTest, PackedDocumentRunsTrainEvaluateAndRecordTheirDocuments) {
  const fs::path run = root_ / "packed";
  train_run(run, {"data.reset_positions=true", "data.mask_documents=true"});
  const json config = read_json_file(run / "config.json");
  EXPECT_EQ(config["data"]["reset_positions"], true);
  EXPECT_EQ(config["data"]["mask_documents"], true);
  for (const auto& line : test::read_metrics(run / "metrics.jsonl")) {
    for (const char* key : {"loss", "val_loss"}) {
      if (line.contains(key)) {
        EXPECT_TRUE(std::isfinite(line[key].get<double>())) << line;
      }
    }
  }

  const fs::path file = root_ / "documents_treatments.json";
  write_file_atomic(file, R"({"treatments": [
    {"name": "one-sequence", "data": {"reset_positions": false, "mask_documents": false}},
    {"name": "reset-only", "data": {"mask_documents": false}}]})");
  auto options = eval_options(run, "packed.json");
  options.max_tokens = 4096;  // several documents of 700-1100 bytes: windows cross their boundaries
  options.treatment_files = {file.string()};
  const json document = eval_quietly(options);
  EXPECT_NO_THROW(validate_results(document, "packed.json"));
  const auto& treatments = document.at("treatments");
  ASSERT_EQ(treatments.size(), 3u);
  EXPECT_EQ(treatments[0].at("documents"), (json{{"reset_positions", true}, {"mask_documents", true}, {"end_of_text", 256}}));
  EXPECT_EQ(treatments[1].at("documents"), (json{{"reset_positions", false}, {"mask_documents", false}, {"end_of_text", nullptr}}));
  EXPECT_EQ(treatments[2].at("documents"), (json{{"reset_positions", true}, {"mask_documents", false}, {"end_of_text", 256}}));
  std::map<std::string, double> nll;
  for (const auto& row : document.at("results")) {
    ASSERT_EQ(row.at("status"), "ok") << row;
    if (row.at("length") == 64) nll[row.at("treatment").get<std::string>()] = row.at("nll").get<double>();
  }
  // Masking and (without it) reset positions change what a token attends to. (Reset under masking
  // changes nothing but rounding for RoPE, whose scores depend on p_i - p_j alone.)
  EXPECT_NE(nll.at("baseline"), nll.at("one-sequence"));
  EXPECT_NE(nll.at("reset-only"), nll.at("one-sequence"));
}

TEST_F(TrainEvalTest, DocumentTreatmentsAreChecked) {
  const RunConfig trained = config_from_json(read_json_file(run_a() / "config.json"), "config.json");
  const RunConfig masked = apply_treatment(trained, {"masked", {{"data", {{"mask_documents", true}}}}});
  EXPECT_TRUE(masked.data.mask_documents);
  EXPECT_FALSE(masked.data.reset_positions);
  EXPECT_EQ(user_error_message([&] { apply_treatment(trained, {"x", {{"data", {{"train_length", 64}}}}}); }),
            "treatment \"x\".data.train_length: unknown key (known here: mask_documents, reset_positions)");
  EXPECT_TRUE(contains(user_error_message([&] { apply_treatment(trained, {"y", {{"data", {{"mask_documents", 2}}}}}); }),
                       "treatment \"y\": data.mask_documents: expected a boolean, got 2"));
  // A layer switched to ReRoPE merges by token distance: reset positions need the mask there too.
  const Treatment rerope{"r", {{"data", {{"reset_positions", true}}}, {"position", {{"scheme", "rerope"}}}}};
  EXPECT_TRUE(contains(user_error_message([&] { apply_treatment(trained, rerope); }), "data.reset_positions: rerope"));
}

}  // namespace
}  // namespace extrap
