// Synthetic tasks: every generator is deterministic per seed and right by its checker, the checkers
// reject wrong answers and masks, and task datasets (format /2 with loss masks) round-trip and are
// verified on load.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "data/task_dataset.h"
#include "data/tasks.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;
using nlohmann::json;

TaskExample example(const std::string& text, const std::string& marks) {
  TaskExample e;
  e.text = text;
  for (char m : marks) e.answer.push_back(m == '1');
  return e;
}

std::string check(const std::string& task, const TaskExample& e, const std::map<std::string, std::string>& params = {}) {
  const TaskSpec& spec = find_task(task);
  return spec.check(e, resolve_task_params(spec, params));
}

// A different byte of the same kind, so the corrupted example still parses.
char corrupted(char c) {
  if (c >= '0' && c <= '9') return char('0' + (c - '0' + 1) % 10);
  if (c == 'a') return 'b';
  return c >= 'a' && c <= 'z' ? char(c - 1) : c;
}

TEST(Tasks, HandWrittenExamplesPassAndWrongAnswersFail) {
  EXPECT_EQ(check("copy", example("abc|abc", "0000111")), "");
  EXPECT_EQ(check("copy_sep", example("a,b|a,b", "0000111")), "");
  EXPECT_EQ(check("reverse", example("abc|cba", "0000111")), "");
  EXPECT_EQ(check("mqar", example("a3c7|c7a3", "000000101")), "");
  EXPECT_EQ(check("passkey", example("xq=48213zmw|48213", "00000000000011111")), "");
  EXPECT_EQ(check("counting", example("a=0;b=0;a++;b++;a++;print a=2", "00000000000000000000000000001")), "");
  EXPECT_EQ(check("addition", example("12+39=051", "000000111")), "");
  EXPECT_EQ(check("addition", example("12+39=150", "000000111"), {{"reversed", "1"}}), "");
  EXPECT_EQ(check("addition", example("95+17=112", "000000111")), "");

  EXPECT_TRUE(contains(check("copy", example("abc|abd", "0000111")), "expected \"abc\""));
  EXPECT_TRUE(contains(check("reverse", example("abc|abc", "0000111")), "is wrong"));
  EXPECT_TRUE(contains(check("mqar", example("a3c7|c3a3", "000000101")), "is wrong"));
  EXPECT_TRUE(contains(check("counting", example("a=0;b=0;a++;b++;a++;print a=1", "00000000000000000000000000001")), "is wrong"));
  EXPECT_TRUE(contains(check("addition", example("12+39=052", "000000111")), "is wrong"));
  EXPECT_TRUE(contains(check("passkey", example("xq=48213zmw|48212", "00000000000011111")), "is wrong"));
  // The mask must mark exactly the answer: not the separator, not a query key.
  EXPECT_TRUE(contains(check("copy", example("abc|abc", "0001111")), "mask"));
  EXPECT_TRUE(contains(check("mqar", example("a3c7|c7a3", "000001101")), "mask"));
  EXPECT_TRUE(contains(check("copy", example("abc|abc", "000011")), "mask"));
  // Malformed prompts are named.
  EXPECT_TRUE(contains(check("copy", example("abcabc", "000111")), "'|'"));
  EXPECT_TRUE(contains(check("copy", example("aBc|aBc", "0000111")), "letters"));
  EXPECT_TRUE(contains(check("copy", example("abc|abc", "0000111"), {{"vocab", "2"}}), "first 2 letters"));
  EXPECT_TRUE(contains(check("counting", example("a=0;c++;print a=0", "00000000000000001")), "statement"));
}

TEST(Tasks, EveryGeneratorIsDeterministicRightAndWithinItsLengthBounds) {
  for (const TaskSpec& task : registered_tasks()) {
    SCOPED_TRACE(task.name);
    const TaskParams params = resolve_task_params(task, {});
    for (int64_t size = task.min_size; size < task.min_size + 12; ++size) {
      SplitMix64 a(size * 7 + 1), b(size * 7 + 1), other(size * 7 + 2);
      std::set<std::string> texts;
      for (int i = 0; i < 20; ++i) {
        const TaskExample e = task.generate(size, params, a);
        const TaskExample again = task.generate(size, params, b);
        EXPECT_EQ(e.text, again.text);
        EXPECT_EQ(e.answer, again.answer);
        texts.insert(task.generate(size, params, other).text);
        EXPECT_EQ(e.size, size);
        ASSERT_EQ(task.check(e, params), "") << e.text;
        const auto [low, high] = task.length_bounds(size, params);
        EXPECT_GE(e.tokens(), low) << e.text;
        EXPECT_LE(e.tokens(), high) << e.text;
        EXPECT_TRUE(std::all_of(e.text.begin(), e.text.end(), [](char c) { return c >= 32 && c < 127 && c != '[' && c != ']'; }));
        const std::string answer = e.answer_text();
        ASSERT_FALSE(answer.empty());
        // Every answer byte matters: changing any one of them fails the checker.
        for (std::size_t i = 0; i < e.text.size(); ++i) {
          if (!e.answer[i] || corrupted(e.text[i]) == e.text[i]) continue;
          TaskExample wrong = e;
          wrong.text[i] = corrupted(e.text[i]);
          EXPECT_NE(task.check(wrong, params), "") << wrong.text;
        }
      }
      if (size >= 3) EXPECT_GT(texts.size(), 1u);  // another seed gives other examples
    }
  }
}

TEST(Tasks, ParamsAndRangesAreValidated) {
  EXPECT_TRUE(contains(user_error_message([] { find_task("sorting"); }), "unknown task 'sorting' (known: addition, copy"));
  const TaskSpec& copy = find_task("copy");
  EXPECT_EQ(resolve_task_params(copy, {{"vocab", "5"}}).at("vocab"), 5);
  EXPECT_EQ(user_error_message([&] { resolve_task_params(copy, {{"digits", "5"}}); }),
            "--param digits: not a parameter of task copy (its parameters: vocab)");
  EXPECT_EQ(user_error_message([&] { resolve_task_params(copy, {{"vocab", "27"}}); }), "--param vocab=27: must be in [2, 26]");
  EXPECT_EQ(user_error_message([&] { resolve_task_params(copy, {{"vocab", "x"}}); }), "--param vocab=x: not an integer");
  EXPECT_EQ(parse_length_range("10:40", "--train-lengths").high, 40);
  for (const char* bad : {"40:10", "0:5", "5", "a:b", "5:", ":5"}) {
    EXPECT_TRUE(contains(user_error_message([&] { parse_length_range(bad, "--test-lengths"); }), "expected A:B"));
  }
  const TaskParams params = resolve_task_params(copy, {});
  EXPECT_EQ(sizes_for_lengths(copy, params, {10, 15}, "--train-lengths"), (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(user_error_message([&] { sizes_for_lengths(copy, params, {1, 2}, "--train-lengths"); }),
            "--train-lengths 1:2: no copy example has a length in that range (the shortest has 3 tokens)");
  const TaskSpec& mqar = find_task("mqar");
  EXPECT_TRUE(contains(user_error_message([&] {
                         sizes_for_lengths(mqar, resolve_task_params(mqar, {{"vocab", "4"}}), {100, 200}, "--test-lengths");
                       }),
                       "the longest 17"));
}

TEST(Tasks, RenderingBracketsTheAnswer) {
  const TaskExample e = example("a3c7|c7a3", "000000101");
  EXPECT_EQ(render_task_example(e.text, e.answer), "a3c7|c[7]a[3]");
}

class TaskDatasetTest : public test::TempDirTest {
 protected:
  TaskDatasetOptions options(const std::string& task = "copy") const {
    TaskDatasetOptions o;
    o.task = task;
    o.train_lengths = {5, 15};
    o.test_lengths = {5, 31};
    o.train_examples = 300;
    o.val_examples = 30;
    o.test_examples = 100;
    o.seed = 11;
    o.output = root_ / "data";
    return o;
  }
};

TEST_F(TaskDatasetTest, RoundTripsWithMasksThatMarkExactlyTheAnswers) {
  for (const TaskSpec& task : registered_tasks()) {
    SCOPED_TRACE(task.name);
    auto o = options(task.name);
    o.train_lengths = {1, 60};
    o.test_lengths = {1, 120};
    const json metadata = prepare_task_dataset(o);
    EXPECT_EQ(metadata.at("format"), "extrap.dataset/2");
    const Dataset dataset = Dataset::load(o.output);
    ASSERT_TRUE(dataset.has_task());
    EXPECT_EQ(dataset.task().at("name"), task.name);
    const TaskParams params = resolve_task_params(task, {});
    std::set<std::string> train_texts;
    for (const char* split : {"train", "val", "test"}) {
      const auto& stream = dataset.split(split);
      const auto& mask = dataset.mask(split);
      ASSERT_EQ(int64_t(mask.size()), stream.size());
      const auto documents = dataset.documents(split);
      const LengthRange range = std::string(split) == "test" ? o.test_lengths : o.train_lengths;
      for (const auto& d : documents) {
        TaskExample e;
        for (int64_t t = 0; t < d.tokens; ++t) e.text += char(stream[d.offset + t]);
        e.answer.assign(mask.begin() + d.offset, mask.begin() + d.offset + d.tokens);
        ASSERT_EQ(task.check(e, params), "") << e.text;
        EXPECT_TRUE(range.contains(d.tokens));
        EXPECT_EQ(mask[d.offset + d.tokens], 0);  // the end-of-text token is never an answer
        if (std::string(split) == "train") {
          train_texts.insert(e.text);
        } else {
          EXPECT_FALSE(train_texts.count(e.text)) << "held-out example seen in train: " << e.text;
        }
      }
    }
  }
}

TEST_F(TaskDatasetTest, IsDeterministicPerSeed) {
  auto o = options();
  prepare_task_dataset(o);
  const std::string first = read_text_file(o.output / "test.bin") + read_text_file(o.output / "test.mask");
  prepare_task_dataset(o);  // replaces the earlier dataset
  EXPECT_EQ(read_text_file(o.output / "test.bin") + read_text_file(o.output / "test.mask"), first);
  o.seed = 12;
  prepare_task_dataset(o);
  EXPECT_NE(read_text_file(o.output / "test.bin") + read_text_file(o.output / "test.mask"), first);
  const json metadata = read_json_file(o.output / "metadata.json");
  EXPECT_EQ(metadata.at("task").at("train_lengths"), json::array({5, 15}));
  EXPECT_EQ(metadata.at("task").at("params"), json({{"vocab", 26}}));
  const auto& seen = metadata.at("task").at("example_lengths").at("train");
  EXPECT_GE(seen.at(0).get<int64_t>(), 5);
  EXPECT_LE(seen.at(1).get<int64_t>(), 15);
  EXPECT_TRUE(contains(show_task_examples(Dataset::load(o.output), 1), "test 0 (n="));
}

TEST_F(TaskDatasetTest, MaskFilesAreVerifiedOnLoad) {
  const auto o = options();
  prepare_task_dataset(o);
  const fs::path mask = o.output / "val.mask";
  std::string bytes = read_text_file(mask);
  bytes[0] = char(1 - bytes[0]);
  write_file_atomic(mask, bytes);
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(o.output); }), "val.mask: checksum mismatch"));

  // A value that is not 0 or 1, with checksums that agree: still refused.
  bytes[0] = 2;
  write_file_atomic(mask, bytes);
  json metadata = read_json_file(o.output / "metadata.json");
  metadata["splits"]["val"]["mask_checksum"] = fnv1a64_hex(bytes.data(), bytes.size());
  std::string joined;
  for (const char* split : {"train", "val", "test"}) joined += metadata["splits"][split]["checksum"].get<std::string>();
  for (const char* split : {"train", "val", "test"}) joined += metadata["splits"][split]["mask_checksum"].get<std::string>();
  metadata["checksum"] = fnv1a64_hex(joined.data(), joined.size());
  write_json_atomic(o.output / "metadata.json", metadata);
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(o.output); }), "val.mask: byte 0 is not a loss mask value"));

  fs::remove(mask);
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(o.output); }), "val.mask: missing"));
}

TEST_F(TaskDatasetTest, BadRequestsWriteNothing) {
  auto o = options();
  o.task = "sort";
  EXPECT_TRUE(contains(user_error_message([&] { prepare_task_dataset(o); }), "unknown task 'sort'"));
  o = options();
  o.test_lengths = {1, 2};
  EXPECT_TRUE(contains(user_error_message([&] { prepare_task_dataset(o); }), "--test-lengths 1:2: no copy example"));
  o = options();
  o.test_examples = 0;
  EXPECT_EQ(user_error_message([&] { prepare_task_dataset(o); }), "--test-examples must be at least 1");
  // Two possible examples of 3 tokens: once train has both, nothing is left to hold out.
  o = options();
  o.params = {{"vocab", "2"}};
  o.train_lengths = {3, 3};
  EXPECT_TRUE(contains(user_error_message([&] { prepare_task_dataset(o); }), "were all train examples"));
  EXPECT_FALSE(fs::exists(o.output));
  for (const auto& entry : fs::directory_iterator(root_)) ADD_FAILURE() << "left behind: " << entry.path();
}

}  // namespace
}  // namespace extrap
