// Training and evaluating on synthetic-task datasets: rows are whole left-aligned examples whose
// loss mask reaches the loss, and the task protocol scores exact match per length bin.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/stats.h"
#include "config/config.h"
#include "data/task_dataset.h"
#include "eval/task_eval.h"
#include "report/results.h"
#include "report/tables.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "train/step.h"
#include "train/task_batches.h"
#include "train_eval_fixture.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

const Runtime kCpuFp32("cpu", Precision::kFp32);

class TaskRunTest : public TrainEvalTest {
 protected:
  static void SetUpTestSuite() {
    TrainEvalTest::SetUpTestSuite();
    TaskDatasetOptions o;
    o.task = "copy";
    o.params = {{"vocab", "8"}};
    o.train_lengths = {5, 15};
    o.test_lengths = {5, 31};
    o.train_examples = 400;
    o.val_examples = 40;
    o.test_examples = 60;
    o.seed = 4;
    o.output = task_data();
    prepare_task_dataset(o);
    json config = tiny_config();
    config["data"] = {{"dataset", task_data().string()}, {"train_length", 16}};
    write_file_atomic(root_ / "task.json", config.dump(2));
  }
  static fs::path task_data() { return root_ / "task_data"; }

  static void train_task(const fs::path& out, const std::vector<std::string>& overrides = {}) {
    TrainOptions options;
    options.config_path = (root_ / "task.json").string();
    options.overrides = overrides;
    options.out = out;
    train_quietly(options);
  }
  static const fs::path& task_run() {
    static const fs::path run = [] {
      train_task(root_ / "task_run");
      return root_ / "task_run";
    }();
    return run;
  }
  static EvalOptions task_eval(const std::string& out_name) {
    EvalOptions options = eval_options(task_run(), out_name);
    options.lengths.clear();  // the default bins
    return options;
  }
};

TEST_F(TaskRunTest, RowsAreWholeExamplesLeftAlignedWithTheMaskAsTargetWeights) {
  const Dataset dataset = Dataset::load(task_data());
  const TaskExamples examples(dataset, "train");
  const MaskedBatch batch = masked_batch(examples, {3, 0}, 16);
  ASSERT_EQ(batch.windows.sizes(), (std::vector<int64_t>{2, 17}));
  ASSERT_EQ(batch.weights.sizes(), (std::vector<int64_t>{2, 16}));
  for (int64_t r = 0; r < 2; ++r) {
    const DocumentEntry& e = examples.examples[r == 0 ? 3 : 0];
    for (int64_t t = 0; t <= 16; ++t) {
      const int64_t expected = t < e.tokens ? examples.stream[e.offset + t] : kEndOfText;
      EXPECT_EQ(batch.windows[r][t].item<int64_t>(), expected) << "row " << r << " token " << t;
      if (t > 0) {
        const float weight = t < e.tokens ? examples.mask[e.offset + t] : 0;
        EXPECT_EQ(batch.weights[r][t - 1].item<float>(), weight) << "row " << r << " target " << t - 1;
      }
    }
    // Copy of n letters: n answer targets.
    EXPECT_EQ(batch.weights[r].sum().item<float>(), float((e.tokens - 1) / 2));
  }
  EXPECT_THROW(masked_batch(examples, {0}, 2), std::logic_error);  // the trainer checks lengths first
}

// One step of a freshly seeded model on `windows` with `weights`: its loss, and the weights and
// gradients after it.
struct StepOutcome {
  double loss;
  std::vector<torch::Tensor> parameters, gradients;
};
StepOutcome step_on(const torch::Tensor& windows, const torch::Tensor& weights) {
  RunConfig config = config_from_json({{"model", {{"d_model", 16}, {"n_layers", 2}, {"n_heads", 2}}},
                                       {"data", {{"dataset", "unused"}, {"train_length", 16}}}},
                                      "test");
  torch::manual_seed(3);
  GPT model = build_model(config);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  AdamW optimizer(named, {});
  const StepResult result =
      train_step(model, optimizer, windows, Positions::arange(16, torch::kCPU), 1e-2, 1.0, kCpuFp32, weights);
  StepOutcome outcome{result.loss, {}, {}};
  for (const auto& p : model->parameters()) {
    outcome.parameters.push_back(p.detach().clone());
    outcome.gradients.push_back(p.grad().clone());
  }
  return outcome;
}

bool same(const StepOutcome& a, const StepOutcome& b) {
  if (a.loss != b.loss) return false;
  for (std::size_t i = 0; i < a.parameters.size(); ++i) {
    if (!torch::equal(a.parameters[i], b.parameters[i]) || !torch::equal(a.gradients[i], b.gradients[i])) return false;
  }
  return true;
}

TEST_F(TaskRunTest, MaskedOutTargetsChangeNeitherLossNorGradients) {
  const Dataset dataset = Dataset::load(task_data());
  const TaskExamples examples(dataset, "train");
  const MaskedBatch batch = masked_batch(examples, {0, 1, 2, 3}, 16);
  const StepOutcome reference = step_on(batch.windows, batch.weights);

  // The padding after an example (targets of weight 0, seen only by later weight-0 positions)
  // and the last target of every row.
  const int64_t end = examples.examples[1].tokens;
  auto padded = batch.windows.clone();
  padded[1][end + 1] = int64_t('z');
  padded.select(1, 16).fill_(int64_t('q'));
  EXPECT_TRUE(same(step_on(padded, batch.weights), reference));

  // An answer target does count.
  auto answer = batch.windows.clone();
  answer[1][end - 1] = int64_t('z');
  EXPECT_FALSE(same(step_on(answer, batch.weights), reference));

  // The loss is the mean over the answer targets only.
  auto uniform = torch::ones_like(batch.weights);
  EXPECT_NE(step_on(batch.windows, uniform).loss, reference.loss);
  auto doubled = batch.weights * 2;
  EXPECT_NEAR(step_on(batch.windows, doubled).loss, reference.loss, 1e-6);
}

// Exact match and answer-token accuracy recomputed one example at a time, without the
// evaluator's batching and grouping.
std::pair<double, double> scores_by_hand(const fs::path& run, const Dataset& dataset, int64_t low, int64_t high) {
  const RunConfig config = config_from_json(read_json_file(run / "config.json"), "config.json");
  torch::NoGradGuard no_grad;
  GPT model = build_model(config);
  load_checkpoint(*latest_checkpoint(run), model, nullptr);
  model->eval();
  const auto& stream = dataset.split("test");
  const auto& mask = dataset.mask("test");
  int64_t exact = 0, examples = 0, right_tokens = 0, answer_tokens = 0;
  for (const auto& e : dataset.documents("test")) {
    if (e.tokens < low || e.tokens > high) continue;
    auto tokens = torch::empty({1, e.tokens}, torch::kInt64);
    for (int64_t t = 0; t < e.tokens; ++t) tokens[0][t] = int64_t(stream[e.offset + t]);
    const auto predicted = model->forward(tokens.slice(1, 0, e.tokens - 1), Positions::arange(e.tokens - 1, torch::kCPU)).argmax(-1);
    int64_t wrong = 0;
    for (int64_t t = 1; t < e.tokens; ++t) {
      if (!mask[e.offset + t]) continue;
      ++answer_tokens;
      if (predicted[0][t - 1].item<int64_t>() == int64_t(stream[e.offset + t])) ++right_tokens; else ++wrong;
    }
    exact += wrong == 0;
    ++examples;
  }
  return {double(exact) / double(examples), double(right_tokens) / double(answer_tokens)};
}

TEST(TaskBins, DefaultBinsSplitAtTheTrainingLengthsAndGivenEndsCloseBins) {
  using Bins = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(task_bin_ranges({}, {5, 81}, 21), (Bins{{5, 21}, {22, 36}, {37, 51}, {52, 66}, {67, 81}}));
  EXPECT_EQ(task_bin_ranges({}, {30, 50}, 21), (Bins{{30, 35}, {36, 40}, {41, 45}, {46, 50}}));  // all beyond training
  EXPECT_EQ(task_bin_ranges({}, {10, 11}, 40), (Bins{{10, 10}, {11, 11}}));  // never an empty bin
  EXPECT_EQ(task_bin_ranges({10, 20}, {5, 81}, 21), (Bins{{5, 10}, {11, 20}}));
  EXPECT_EQ(task_bin_ranges({3, 20}, {5, 81}, 21), (Bins{{3, 3}, {4, 20}}));
  EXPECT_TRUE(contains(user_error_message([] { task_bin_ranges({20, 20}, {5, 81}, 21); }), "must ascend (20 before 20)"));
}

TEST(WilsonInterval, MatchesKnownValuesAndStaysInsideZeroOne) {
  const auto [low, high] = wilson_interval(10, 100);
  EXPECT_NEAR(low, 0.0552, 1e-4);
  EXPECT_NEAR(high, 0.1744, 1e-4);
  EXPECT_EQ(wilson_interval(0, 25).first, 0.0);
  EXPECT_NEAR(wilson_interval(0, 25).second, 0.1332, 1e-4);
  EXPECT_EQ(wilson_interval(25, 25).second, 1.0);
  EXPECT_NEAR(wilson_interval(25, 25).first, 1 - 0.1332, 1e-4);
}

TEST_F(TaskRunTest, EvaluatesExactMatchPerLengthBin) {
  const json document = eval_quietly(task_eval("task.json"));
  validate_results(document, "task.json");
  ASSERT_EQ(document["protocols"].size(), 1u);
  const json& protocol = document["protocols"][0];
  EXPECT_EQ(protocol["name"], "task");
  EXPECT_EQ(document["data"]["task"]["name"], "copy");
  const json& trained = document["data"]["task"]["train_lengths"];
  EXPECT_EQ(protocol["bins"][0], json::array({5, trained[1]}));  // the in-distribution bin first
  const Dataset dataset = Dataset::load(task_data());
  int64_t examples = 0;
  ASSERT_EQ(document["results"].size(), protocol["bins"].size());
  for (const auto& row : document["results"]) {
    SCOPED_TRACE(row.dump());
    ASSERT_EQ(row["status"], "ok");
    EXPECT_EQ(row["protocol"], "task");
    EXPECT_EQ(row["length"], row["bin"][1]);
    const double em = row["exact_match"];
    EXPECT_LE(row["exact_match_ci"][0].get<double>(), em);
    EXPECT_GE(row["exact_match_ci"][1].get<double>(), em);
    EXPECT_GE(row["accuracy"].get<double>(), em);  // a whole right answer has every token right
    const auto [em_by_hand, accuracy_by_hand] = scores_by_hand(task_run(), dataset, row["bin"][0], row["bin"][1]);
    EXPECT_NEAR(em, em_by_hand, 1e-12);
    EXPECT_NEAR(row["accuracy"].get<double>(), accuracy_by_hand, 1e-12);
    int64_t answer_tokens = 0, in_bin = 0;
    for (const auto& e : dataset.documents("test")) {
      if (e.tokens < row["bin"][0].get<int64_t>() || e.tokens > row["bin"][1].get<int64_t>()) continue;
      answer_tokens += (e.tokens - 1) / 2;
      ++in_bin;
    }
    EXPECT_EQ(row["examples"], in_bin);
    EXPECT_EQ(row["tokens"], answer_tokens);
    examples += in_bin;
  }
  EXPECT_EQ(examples, 60);  // the default bins cover the test range

  ReportOptions csv;
  csv.format = TableFormat::Csv;
  const std::string table = render_report({document}, csv);
  EXPECT_TRUE(contains(table, "run,scheme,train,"));
  EXPECT_TRUE(contains(table, "%"));
  EXPECT_TRUE(contains(render_report({document}, ReportOptions{}), "em: exact match of whole answers"));
}

TEST_F(TaskRunTest, BinsFollowTheLengthsAndTreatmentsAddRows) {
  write_file_atomic(root_ / "pi.json", R"({"name": "PI", "position": {"scaling": "pi"}})");
  EvalOptions options = task_eval("bins.json");
  options.lengths = {4, 12, 31};
  options.treatment_files = {(root_ / "pi.json").string()};
  const json document = eval_quietly(options);
  validate_results(document, "bins.json");
  ASSERT_EQ(document["results"].size(), 6u);
  EXPECT_EQ(document["results"][0]["status"], "unsupported");
  EXPECT_EQ(document["results"][0]["error"], "no example has 4 to 4 tokens");
  EXPECT_EQ(document["results"][1]["bin"], json::array({5, 12}));
  EXPECT_EQ(document["results"][2]["bin"], json::array({13, 31}));
  EXPECT_EQ(document["results"][4]["treatment"], "PI");
  // Inside the training lengths PI's factor is 1: the same numbers.
  EXPECT_EQ(document["results"][4]["exact_match"], document["results"][1]["exact_match"]);
  options.lengths = {20, 10};
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(options); }), "must ascend"));
}

TEST_F(TaskRunTest, ProtocolsMustFitTheDataset) {
  EvalOptions lm = task_eval("lm.json");
  lm.protocols = {ProtocolKind::kNonoverlap};
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(lm); }), "--protocol nonoverlap scores text"));
  EvalOptions strided = task_eval("strided.json");
  strided.protocol_params.stride = 4;
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(strided); }), "do not apply to --protocol task"));
  EvalOptions text = eval_options(run_a(), "text.json");
  text.task_protocol = true;
  EXPECT_TRUE(contains(user_error_message([&] { eval_quietly(text); }), "needs a synthetic-task dataset"));
}

TEST_F(TaskRunTest, TrainingRefusesRowsOrPositionsTooShortForTheExamples) {
  const fs::path out = root_ / "refused";
  EXPECT_TRUE(contains(user_error_message([&] { train_task(out, {"data.train_length=14"}); }),
                       "data.train_length 14 is shorter than the longest training example"));
  EXPECT_TRUE(contains(user_error_message([&] { train_task(out, {"position.scheme=learned", "position.max_positions=24"}); }),
                       "learned positions cover only 24 positions, but the test examples of"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(TaskRunTest, ResumeIsBitIdentical) {
  const fs::path resumed = root_ / "task_resumed";
  train_task(resumed);
  resume_from_step_4(resumed);
  expect_same_final_checkpoint(task_run(), resumed);
  EXPECT_EQ(read_json_file(task_run() / "DONE").at("val_loss"), read_json_file(resumed / "DONE").at("val_loss"));
}

}  // namespace
}  // namespace extrap
