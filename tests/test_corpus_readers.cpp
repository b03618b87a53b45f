// The JSON Lines and source-code corpus readers, and the reader parameters prepare_dataset records.
#include <fstream>
#include <utility>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "common/files.h"
#include "data/corpus.h"
#include "data/dataset.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

class CorpusReaderTest : public test::TempDirTest {
 protected:
  static void write(const fs::path& path, const std::string& bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
  }

  // `count` documents of different lengths, one JSON Lines line each.
  fs::path make_jsonl_corpus(int count) {
    std::string lines;
    for (int i = 0; i < count; ++i) lines += R"({"text": "document )" + std::to_string(i) + std::string(i % 5, 'x') + "\"}\n";
    write(root_ / "corpus.jsonl", lines);
    return root_ / "corpus.jsonl";
  }

  PrepareOptions options(const std::string& corpus, const fs::path& input) {
    PrepareOptions options;
    options.corpus = corpus;
    options.input = input;
    options.output = root_ / "prepared";
    return options;
  }
};

using JsonlCorpus = CorpusReaderTest;
using CodeCorpus = CorpusReaderTest;

TEST_F(JsonlCorpus, ReadsTheTextOfEveryNonBlankLineByteExact) {
  const fs::path file = root_ / "docs.jsonl";
  write(file,
        "{\"text\": \"plain\"}\n"
        "\n"
        "{\"id\": 3, \"text\": \"tab\\there\\nquote \\\" \\u00e9 \\ud83d\\ude00\", \"meta\": {\"text\": \"no\"}}\n"
        "  \t \r\n"
        "{\"text\": \"na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\"}\r\n"
        "{\"text\": \" kept \\u0000 \"}");  // no final newline
  const auto docs = read_jsonl(file, "text");
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].name, "docs.jsonl:1");
  EXPECT_EQ(docs[0].text, "plain");
  EXPECT_EQ(docs[1].name, "docs.jsonl:3");
  EXPECT_EQ(docs[1].text, "tab\there\nquote \" \xc3\xa9 \xf0\x9f\x98\x80");  // escapes decoded to UTF-8
  EXPECT_EQ(docs[2].name, "docs.jsonl:5");
  EXPECT_EQ(docs[2].text, "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac");  // raw UTF-8 kept as is
  EXPECT_EQ(docs[3].name, "docs.jsonl:6");
  EXPECT_EQ(docs[3].text, std::string(" kept \0 ", 8));
}

TEST_F(JsonlCorpus, TakesTheGivenField) {
  write(root_ / "docs.jsonl", R"({"text": "not this", "body": "this"})" "\n");
  const auto docs = read_jsonl(root_ / "docs.jsonl", "body");
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "this");
}

TEST_F(JsonlCorpus, ReadsTheJsonlFilesDirectlyInADirectorySorted) {
  const fs::path dir = root_ / "shards";
  write(dir / "b.jsonl", "{\"text\": \"b1\"}\n{\"text\": \"b2\"}\n");
  write(dir / "a.jsonl", "{\"text\": \"a1\"}\n");
  write(dir / "notes.txt", "not json\n");
  write(dir / "deeper" / "c.jsonl", "{\"text\": \"not read\"}\n");
  const auto docs = read_jsonl(dir, "text");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].name, "a.jsonl:1");
  EXPECT_EQ(docs[1].name, "b.jsonl:1");
  EXPECT_EQ(docs[2].name, "b.jsonl:2");
  EXPECT_EQ(docs[2].text, "b2");
}

TEST_F(JsonlCorpus, RejectsEachBadLineNamingFileLineAndValue) {
  const std::string long_text(100, 'y');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"text": "abc)", R"(: not valid JSON (column 14: syntax error while parsing value - invalid string: missing closing quote; last read: '"abc'): {"text": "abc)"},
      {R"({"text": "a"} trailing)", R"(: not valid JSON (column 17: syntax error while parsing value - invalid literal; )"
                                    R"(last read: '"a"} tra'; expected end of input): {"text": "a"} trailing)"},
      {"{\"text\": \"\xff\"}", ": not valid JSON (column 11: syntax error while parsing value - invalid string: ill-formed UTF-8 byte"},
      {"[1, 2]", ": expected a JSON object, got an array: [1, 2]"},
      {R"("just a string")", R"(: expected a JSON object, got a string: "just a string")"},
      {R"({"body": "x"})", R"(: no "text" field (choose one with --text-field): {"body": "x"})"},
      {R"({"text": 42})", R"(: field "text" is a number (42), expected a string)"},
      {R"({"text": null})", R"(: field "text" is null (null), expected a string)"},
      {R"({"text": ["a"]})", R"(: field "text" is an array (["a"]), expected a string)"},
      {R"({"text": ""})", R"(: field "text" is an empty string)"},
      {R"({"text": 1, "pad": ")" + long_text + "\"}", R"(: field "text" is a number (1), expected a string)"},
      {R"({"body": ")" + long_text + "\"}", R"(: no "text" field (choose one with --text-field): {"body": ")" + std::string(50, 'y') + "..."},
  };
  for (const auto& [line, expected] : cases) {
    write(root_ / "bad.jsonl", "{\"text\": \"fine\"}\n" + line + "\n{\"text\": \"never read\"}\n");
    const std::string message = user_error_message([&] { read_jsonl(root_ / "bad.jsonl", "text"); });
    EXPECT_TRUE(contains(message, (root_ / "bad.jsonl").string() + ":2" + expected)) << message;
    EXPECT_FALSE(contains(message, "\n")) << message;
  }
}

TEST_F(JsonlCorpus, RejectsMissingAndEmptyInput) {
  EXPECT_TRUE(contains(user_error_message([&] { read_jsonl(root_ / "absent.jsonl", "text"); }), "absent.jsonl: JSON Lines"));
  write(root_ / "blank.jsonl", "\n  \n");
  EXPECT_TRUE(contains(user_error_message([&] { read_jsonl(root_ / "blank.jsonl", "text"); }), "no JSON Lines documents"));
  fs::create_directories(root_ / "empty");
  EXPECT_TRUE(contains(user_error_message([&] { read_jsonl(root_ / "empty", "text"); }), "no JSON Lines documents"));
}

TEST_F(JsonlCorpus, PrepareRecordsTheFieldAndWritesNothingOnABadLine) {
  auto jsonl = options("jsonl", make_jsonl_corpus(20));
  const auto metadata = prepare_dataset(jsonl);
  EXPECT_EQ(metadata.at("corpus"), "jsonl");
  EXPECT_EQ(metadata.at("text_field"), "text");
  EXPECT_FALSE(metadata.contains("extensions"));
  EXPECT_EQ(Dataset::load(jsonl.output).documents().size(), 20u);

  jsonl.output = root_ / "refused";
  write(jsonl.input, read_text_file(jsonl.input) + "{\"text\": \"\"}\n");
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(jsonl); }), "corpus.jsonl:21: field \"text\" is an empty"));
  EXPECT_FALSE(fs::exists(jsonl.output));
}

TEST_F(CodeCorpus, ReadsMatchingRegularFilesRecursivelyByRelativePath) {
  const fs::path tree = root_ / "tree";
  write(tree / "b.c", "int b;\r\n");
  write(tree / "a" / "x.h", std::string("#define X 1\n\0\xff", 14));
  write(tree / "a-b.c", "/* a-b */\n");
  write(tree / "z" / "deep" / "q.c", "q");
  write(tree / "a" / "notes.txt", "not code");
  write(tree / "Makefile", "all:");
  write(tree / "upper.C", "not .c");
  fs::create_directory_symlink(tree / "a", tree / "linked_dir");
  fs::create_symlink(tree / "b.c", tree / "linked.c");
  const auto docs = read_code(tree, {".c", ".h"});
  std::vector<std::string> names;
  for (const auto& doc : docs) names.push_back(doc.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a-b.c", "a/x.h", "b.c", "z/deep/q.c"}));  // byte order
  EXPECT_EQ(docs[1].text, std::string("#define X 1\n\0\xff", 14));                    // bytes as they are
  EXPECT_EQ(docs[2].text, "int b;\r\n");
  EXPECT_EQ(read_code(root_ / "tree/", {".txt"}).at(0).name, "a/notes.txt");
}

TEST_F(CodeCorpus, RejectsBadExtensionsAndEmptyTrees) {
  write(root_ / "tree" / "main.c", "int main;");
  for (const std::string bad : {"c", ".", ".tar.gz", "./c", ""}) {
    EXPECT_TRUE(contains(user_error_message([&] { read_code(root_ / "tree", {".h", bad}); }),
                         "extension \"" + bad + "\": expected a dot and a suffix"))
        << bad;
  }
  EXPECT_TRUE(contains(user_error_message([&] { read_code(root_ / "tree", {}); }), "no file extensions"));
  EXPECT_TRUE(contains(user_error_message([&] { read_code(root_ / "tree", {".py", ".rs"}); }),
                       "tree: no files with the extensions .py, .rs found"));
  EXPECT_TRUE(contains(user_error_message([&] { read_code(root_ / "tree" / "main.c", {".c"}); }), "source directory not found"));
}

TEST_F(CodeCorpus, PrepareRecordsTheExtensions) {
  for (int i = 0; i < 10; ++i) write(root_ / "tree" / ("d" + std::to_string(i)) / "f.c", std::string(i + 1, 'c'));
  auto code = options("code", root_ / "tree");
  code.extensions = {".c"};
  const auto metadata = prepare_dataset(code);
  EXPECT_EQ(metadata.at("extensions"), nlohmann::json::array({".c"}));
  EXPECT_FALSE(metadata.contains("text_field"));
  EXPECT_EQ(Dataset::load(code.output).documents().size(), 10u);
}

}  // namespace
}  // namespace extrap
