// Sweep files: expansion into named runs, bad input, the state of each run (what a re-submission
// skips or resumes), and seeds aggregated in the report.
#include <gtest/gtest.h>

#include <cmath>

#include "common/files.h"
#include "report/cells.h"
#include "report/tables.h"
#include "sweep/run_state.h"
#include "sweep/sweep_file.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using nlohmann::json;
using test::contains;
using test::user_error_message;

class SweepTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(root_ / "data");
    const json config{{"data", {{"dataset", (root_ / "data").string()}}}, {"train", {{"steps", 10}}}};
    write_json_atomic(root_ / "configs" / "rope.json", config);
    write_json_atomic(root_ / "configs" / "alibi.json", {{"extends", "rope.json"}, {"position", {{"scheme", "alibi"}}}});
  }
  // Writes `document` as the sweep file (runs under the temporary directory unless it says).
  Sweep load(json document) {
    if (!document.contains("runs")) document["runs"] = (root_ / "runs").string();
    write_json_atomic(root_ / "sweep.json", document);
    return load_sweep(root_ / "sweep.json");
  }
  std::string error(const json& document) {
    return user_error_message([&] { load(document); });
  }
  json two_configs() const { return {{"configs", {"configs/rope.json", "configs/alibi.json"}}}; }
};

TEST_F(SweepTest, ExpandsConfigsTimesGridTimesSeedsInOrder) {
  json document = two_configs();
  document["set"] = {"train.steps=5"};
  document["grid"] = {{"train.warmup_steps", {2}}, {"train.lr", {0.001, 0.003}}};
  document["seeds"] = {1, 2};
  const Sweep sweep = load(document);
  ASSERT_EQ(sweep.runs_in_order.size(), 8u);
  std::vector<std::string> names;
  for (const auto& run : sweep.runs_in_order) names.push_back(run.name);
  // Grid keys in sorted order (train.lr before train.warmup_steps), the first varying slowest, seeds innermost.
  EXPECT_EQ(names, (std::vector<std::string>{
                       "rope_lr=0.001_warmup_steps=2_seed=1", "rope_lr=0.001_warmup_steps=2_seed=2",
                       "rope_lr=0.003_warmup_steps=2_seed=1", "rope_lr=0.003_warmup_steps=2_seed=2",
                       "alibi_lr=0.001_warmup_steps=2_seed=1", "alibi_lr=0.001_warmup_steps=2_seed=2",
                       "alibi_lr=0.003_warmup_steps=2_seed=1", "alibi_lr=0.003_warmup_steps=2_seed=2"}));
  const SweepRun& run = sweep.runs_in_order[3];
  EXPECT_EQ(run.overrides, (std::vector<std::string>{"train.steps=5", "train.lr=0.003", "train.warmup_steps=2", "seed=2"}));
  EXPECT_EQ(run.config, root_ / "configs" / "rope.json");  // relative to the sweep file
  EXPECT_EQ(run.dir, root_ / "runs" / "rope_lr=0.003_warmup_steps=2_seed=2");
  EXPECT_EQ(sweep.name, "sweep");
  EXPECT_EQ(&sweep.find("alibi_lr=0.001_warmup_steps=2_seed=2"), &sweep.runs_in_order[5]);
  // The same file expands the same way every time.
  EXPECT_EQ(load(document).runs_in_order[6].name, sweep.runs_in_order[6].name);
}

TEST_F(SweepTest, WithoutGridOrSeedsEachConfigIsOneRunUnderItsOwnName) {
  const Sweep sweep = load(two_configs());
  ASSERT_EQ(sweep.runs_in_order.size(), 2u);
  EXPECT_EQ(sweep.runs_in_order[1].name, "alibi");
  EXPECT_TRUE(sweep.runs_in_order[1].overrides.empty());
  EXPECT_FALSE(sweep.runs_in_order[1].seed);
}

TEST_F(SweepTest, NamesAreSafeDirectoryNames) {
  EXPECT_EQ(short_keys({"model.dropout", "train.dropout", "position.base", "seed"}),
            (std::vector<std::string>{"model.dropout", "train.dropout", "base", "seed"}));
  EXPECT_EQ(short_keys({"a.b.c", "x.b.c", "a.y"}), (std::vector<std::string>{"a.b.c", "x.b.c", "y"}));
  EXPECT_EQ(name_part("scheme", "rope/ntk mixed"), "scheme=rope-ntk-mixed");
  EXPECT_EQ(name_part("lr", "1e-05"), "lr=1e-05");
  // A string grid value that reads as JSON is passed quoted, so it stays a string.
  json document = two_configs();
  document["grid"] = {{"name", {"123", "plain"}}};
  const Sweep sweep = load(document);
  EXPECT_EQ(sweep.runs_in_order[0].overrides, (std::vector<std::string>{"name=\"123\""}));
  EXPECT_EQ(sweep.runs_in_order[1].overrides, (std::vector<std::string>{"name=plain"}));
  EXPECT_EQ(sweep.runs_in_order[1].name, "rope_name=plain");
}

TEST_F(SweepTest, BadInputNamesTheFileTheFieldAndTheValue) {
  const std::string file = (root_ / "sweep.json").string();
  json document = two_configs();
  document["seed"] = {1};
  EXPECT_EQ(error(document), file + ": seed: unknown key (known here: name, runs, configs, set, grid, seeds, threads, eval, slurm)");
  document = two_configs();
  document["grid"] = {{"position.base", json::array()}};
  EXPECT_EQ(error(document), file + ": grid.position.base: is empty: a grid key needs at least one value");
  EXPECT_EQ(error({{"configs", json::array()}}), file + ": configs: is empty (give at least one of config file paths)");
  EXPECT_TRUE(contains(error({{"configs", {"configs/missing.json"}}}),
                       file + ": run missing: " + (root_ / "configs" / "missing.json").string() + ": config file not found"));
  document = two_configs();
  document["set"] = {"model.d_model=33"};
  EXPECT_TRUE(contains(error(document), file + ": run rope: --set model.d_model=33: model.d_model: 33 is not divisible"));
  document = two_configs();
  document["grid"] = {{"train.steps", {5, "many"}}};
  EXPECT_TRUE(contains(error(document), "run rope_steps=many: --set train.steps=many: train.steps: expected an integer"));
  document = two_configs();
  document["seeds"] = {1, -2};
  EXPECT_EQ(error(document), file + ": seeds: -2 is not one of integers >= 0");
  document = two_configs();
  document["eval"] = {{"lengths", {512}}, {"stride", 4}};
  EXPECT_TRUE(contains(error(document), file + ": eval.stride: unknown key"));
  document["eval"] = {{"treatments", {"nowhere.json"}}};
  EXPECT_TRUE(contains(error(document), "eval.treatments: " + (root_ / "nowhere.json").string() + ": treatments file not found"));
  document = two_configs();
  document["slurm"] = {{"cpus_per_task", 0}};
  EXPECT_EQ(error(document), file + ": slurm.cpus_per_task: expected an integer >= 1, got 0");
  document = {{"configs", {"configs/rope.json", "other/rope.json"}}};
  write_json_atomic(root_ / "other" / "rope.json", {{"extends", "../configs/rope.json"}});
  EXPECT_TRUE(contains(error(document), file + ": runs: two runs are both named rope"));
  write_json_atomic(root_ / "configs" / "nodata.json", {{"data", {{"dataset", (root_ / "absent").string()}}}});
  EXPECT_TRUE(contains(error({{"configs", {"configs/nodata.json"}}}), "run nodata: data.dataset " + (root_ / "absent").string() +
                                                                           ": dataset directory not found"));
  EXPECT_EQ(user_error_message([&] { load_sweep(root_ / "none.json"); }), (root_ / "none.json").string() + ": sweep file not found");
}

TEST_F(SweepTest, StateFollowsTheRunDirectoryTheStampAndTheLastAttempt) {
  json document = two_configs();
  document["eval"] = {{"lengths", {32, 64}}, {"max_tokens", 256}};
  const Sweep sweep = load(document);
  const SweepRun& run = sweep.runs_in_order[0];
  EXPECT_EQ(inspect_run(sweep, run).state, RunState::Missing);
  write_json_atomic(run.dir / "config.json", json::object());
  EXPECT_EQ(inspect_run(sweep, run).state, RunState::Interrupted);  // resumes from its checkpoint
  record_attempt(sweep, run, "failed", "train", 1);
  const RunStatus failed = inspect_run(sweep, run);
  EXPECT_EQ(failed.state, RunState::Failed);
  EXPECT_EQ(failed.detail, "train exited 1; log " + (root_ / "runs" / ".sweep" / "logs" / "rope.log").string());
  write_json_atomic(run.dir / "DONE", {{"step", 10}});
  record_attempt(sweep, run, "interrupted", "eval", 130);
  EXPECT_EQ(inspect_run(sweep, run).state, RunState::Trained);
  // Results count only with the stamp of the current eval arguments, written after this training.
  write_json_atomic(run.dir / "results" / "eval.json", {{"complete", true}});
  EXPECT_FALSE(is_evaluated(sweep, run));
  write_eval_stamp(sweep, run);
  EXPECT_EQ(inspect_run(sweep, run).state, RunState::Evaluated);
  EXPECT_EQ(eval_arguments(sweep), (std::vector<std::string>{"--lengths", "32,64", "--max-tokens", "256"}));
  document["eval"]["lengths"] = {32, 128};
  const Sweep longer = load(document);
  EXPECT_EQ(inspect_run(longer, longer.runs_in_order[0]).state, RunState::Trained);
  EXPECT_TRUE(is_evaluated(sweep, run));
  write_json_atomic(run.dir / "DONE", {{"step", 20}});  // trained again (more steps): evaluate again
  EXPECT_FALSE(is_evaluated(sweep, run));
  write_eval_stamp(sweep, run);
  write_json_atomic(run.dir / "results" / "eval.json", {{"complete", false}});  // an interrupted eval
  EXPECT_FALSE(is_evaluated(sweep, run));
}

TEST_F(SweepTest, TreatmentFilesAreEvaluatedAgainWhenTheyChange) {
  write_json_atomic(root_ / "treatments.json", {{"name", "PI"}, {"position", {{"scaling", "pi"}}}});
  json document = two_configs();
  document["eval"] = {{"treatments", {"treatments.json"}}, {"protocols", {"nonoverlap", "repeated"}}};
  const Sweep sweep = load(document);
  const SweepRun& run = sweep.runs_in_order[1];
  EXPECT_EQ(eval_arguments(sweep), (std::vector<std::string>{"--lengths", "512,2048,8192", "--protocol", "nonoverlap,repeated",
                                                             "--treatments", (root_ / "treatments.json").string()}));
  write_json_atomic(run.dir / "DONE", {{"step", 10}});
  write_json_atomic(run.dir / "results" / "eval.json", json::object());
  write_eval_stamp(sweep, run);
  EXPECT_TRUE(is_evaluated(sweep, run));
  write_json_atomic(root_ / "treatments.json", {{"name", "PI"}, {"position", {{"scaling", "pi"}, {"factor", 2.0}}}});
  EXPECT_FALSE(is_evaluated(sweep, run));
}

TEST(SeedAggregation, MeanAndSampleStandardDeviation) {
  // By hand: mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32; sample variance 32/7.
  const MeanStd stats = mean_and_std({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(stats.mean, 5.0);
  EXPECT_DOUBLE_EQ(stats.std, std::sqrt(32.0 / 7.0));
  EXPECT_EQ(stats.n, 8u);
  EXPECT_EQ(mean_and_std({3.5}).std, 0.0);
}

// A results document of one run: ppl per length (a negative one: the length is missing).
json seed_document(const std::string& scheme, int64_t seed, const std::vector<double>& ppls) {
  json results = json::array();
  const int64_t lengths[] = {32, 64};
  for (std::size_t l = 0; l < ppls.size(); ++l) {
    if (ppls[l] < 0) continue;
    const double nll = std::log(ppls[l]);
    results.push_back({{"treatment", "baseline"}, {"protocol", "nonoverlap"}, {"length", lengths[l]}, {"status", "ok"},
                       {"nll", nll}, {"ppl", ppls[l]}, {"bits_per_byte", nll / std::log(2.0)}, {"accuracy", 0.25 * double(seed)},
                       {"tokens", 256}, {"windows", 8}, {"seconds", 0.5}, {"tokens_per_s", 512.0},
                       {"position_buckets", json::array()}});
  }
  return {{"schema", "extrap.eval/3"},
          {"run", {{"name", scheme}, {"checkpoint_step", 10},
                   {"config", {{"name", scheme}, {"seed", seed}, {"position", {{"scheme", scheme}}}, {"data", {{"train_length", 32}}}}}}},
          {"data", {{"checksum", "c0ffee"}, {"split", "test"}}},
          {"protocols", json::array({{{"name", "nonoverlap"}, {"max_tokens", 256}, {"tokens_scored", 256}}})},
          {"treatments", json::array({{{"name", "baseline"}, {"overlay", json::object()}}})},
          {"results", results}};
}

TEST(SeedAggregation, RunsThatDifferOnlyInSeedShareALine) {
  // ppl at 32: 3.0, 3.2, 3.7: mean 3.3, squared deviations 0.09 + 0.01 + 0.16 = 0.26, std sqrt(0.13) = 0.3606.
  // ppl at 64: 5.0 and 6.0 (the third seed has none): mean 5.5, std sqrt(0.5) = 0.7071.
  // acc at 32: 25%, 50%, 75%: mean 50%, std 25%.
  const std::vector<json> documents{seed_document("rope", 1, {3.0, 5.0}), seed_document("alibi", 1, {4.0, 4.5}),
                                    seed_document("rope", 2, {3.2, 6.0}), seed_document("rope", 3, {3.7, -1})};
  EXPECT_EQ(render_report(documents, "ppl", TableFormat::Csv),
            "run,scheme,seeds,train,32,64\n"
            "rope,rope,\"1,2,3\",32,3.30 ± 0.36,5.50 ± 0.71 (n=2)\n"
            "alibi,alibi,1,32,4.00,4.50\n");
  EXPECT_TRUE(contains(render_report(documents, "acc", TableFormat::Csv), "\nrope,rope,\"1,2,3\",32,50.00% ± 25.00%,"));
  const std::string table = render_report(documents, "ppl", TableFormat::Terminal);
  EXPECT_TRUE(contains(table, "a line with several seeds: mean ± sample standard deviation over them")) << table;
  // The same seed twice (one run evaluated twice) is not a second sample: no aggregation.
  const std::string twice = render_report({seed_document("rope", 1, {3.0, 5.0}), seed_document("rope", 1, {3.0, 5.0})}, "ppl",
                                          TableFormat::Csv);
  EXPECT_EQ(twice, "run,scheme,train,32,64\nrope,rope,32,3.00,5.00\nrope,rope,32,3.00,5.00\n");
}

}  // namespace
}  // namespace extrap
