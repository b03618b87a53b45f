#include <unistd.h>

#include <fstream>
#include <set>

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


class DataTest : public test::TempDirTest {
 protected:

  static void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  // A text corpus of `count` distinct documents of different lengths.
  fs::path make_text_corpus(int count) {
    const fs::path dir = root_ / "corpus";
    for (int i = 0; i < count; ++i) {
      const std::string id = (i < 10 ? "0" : "") + std::to_string(i);
      write(dir / ("doc" + id + ".txt"), "document " + id + "\n" + std::string(i % 7, 'x') + "\n");
    }
    return dir;
  }

  PrepareOptions text_options(const fs::path& input, const std::string& output, uint64_t seed) {
    PrepareOptions options;
    options.corpus = "text";
    options.input = input;
    options.output = root_ / output;
    options.seed = seed;
    options.val_fraction = 0.1;
    options.test_fraction = 0.1;
    return options;
  }

};

TEST(DetagBrown, ConvertsTaggedSentencesToPlainText) {
  const std::string tagged =
      "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.\n\n\n"
      "\tAtlanta's/np$ mayor/nn (/( Hartsfield/np )/) ,/, 1/2/cd cup/nn ;/. plain ok/jj ?/.\n"
      "Headline/nn-hl here/rb \n";
  EXPECT_EQ(detag_brown(tagged),
            "The Fulton County said \"no evidence\".\n"
            "Atlanta's mayor (Hartsfield), 1/2 cup; plain ok?\n"
            "Headline here\n");
}

TEST(DetagBrown, DropsTheRepeatedFinalPunctuation) {
  EXPECT_EQ(detag_brown("\tlaws/nns ;/. ;/.\n\tWhy/wrb ?/. ?/.\n"), "laws;\nWhy?\n");
}

TEST(DetagBrown, AlternatesSingleQuotes) {
  EXPECT_EQ(detag_brown("\tsay/vb ,/, '/' Don't/do* worry/vb '/' ./.\n"), "say, 'Don't worry'.\n");
}

TEST_F(DataTest, ReadKjvGroupsVersesByBook) {
  const fs::path file = root_ / "kjv.txt";
  write(file,
        "Ge1:1 In the beginning God created the heaven and the earth.\n"
        "Ge1:2 And the earth was without form.\n"
        "\n"
        "1Sa3:4 That the LORD called Samuel.\n"
        "1Sa3:5 And he ran unto Eli.\n"
        "Rev22:21 The grace of our Lord Jesus Christ be with you all. Amen.\n");
  const auto docs = read_kjv(file);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].name, "01_Ge");
  EXPECT_EQ(docs[0].text, "In the beginning God created the heaven and the earth.\nAnd the earth was without form.\n");
  EXPECT_EQ(docs[1].name, "02_1Sa");
  EXPECT_EQ(docs[1].text, "That the LORD called Samuel.\nAnd he ran unto Eli.\n");
  EXPECT_EQ(docs[2].name, "03_Rev");
  EXPECT_NE(user_error_message([&] { read_kjv(root_ / "absent.txt"); }).find("absent.txt"), std::string::npos);
}

TEST_F(DataTest, ReadBrownTakesOnlyCorpusFiles) {
  const fs::path dir = root_ / "brown";
  write(dir / "cb02", "\tSecond/od ./.\n");
  write(dir / "ca01", "\tFirst/od ./.\n");
  write(dir / "README", "not a corpus file\n");
  write(dir / "cats.txt", "ca01 news\n");
  write(dir / "cz01", "\tOut/rp of/in range/nn\n");
  const auto docs = read_brown(dir);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].name, "ca01");
  EXPECT_EQ(docs[0].text, "First.\n");
  EXPECT_EQ(docs[1].name, "cb02");
  EXPECT_NE(user_error_message([&] { read_brown(root_ / "nowhere"); }).find("nowhere"), std::string::npos);
}

TEST_F(DataTest, ReadTextSkipsEmptyAndNonTxtFiles) {
  const fs::path dir = root_ / "texts";
  write(dir / "b.txt", "bee");
  write(dir / "a.txt", "ay");
  write(dir / "empty.txt", "");
  write(dir / "notes.md", "ignored");
  const auto docs = read_text(dir);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].name, "a.txt");
  EXPECT_EQ(docs[1].text, "bee");
  EXPECT_EQ(read_text(dir / "b.txt").size(), 1u);
  EXPECT_FALSE(user_error_message([&] { read_text(root_ / "nothing"); }).empty());
}

TEST_F(DataTest, PrepareIsDeterministicPerSeed) {
  const fs::path corpus = make_text_corpus(40);
  const auto first = prepare_dataset(text_options(corpus, "a", 7));
  const auto again = prepare_dataset(text_options(corpus, "b", 7));
  const auto other = prepare_dataset(text_options(corpus, "c", 8));
  EXPECT_EQ(first.at("checksum"), again.at("checksum"));
  for (const std::string file : {"train.bin", "val.bin", "test.bin", "documents.tsv"}) {
    EXPECT_EQ(read_text_file(root_ / "a" / file), read_text_file(root_ / "b" / file)) << file;
  }
  EXPECT_NE(read_text_file(root_ / "a" / "documents.tsv"), read_text_file(root_ / "c" / "documents.tsv"));
  EXPECT_NE(first.at("checksum"), other.at("checksum"));
}

TEST_F(DataTest, PrepareSplitsEveryDocumentExactlyOnce) {
  const fs::path corpus = make_text_corpus(40);
  const auto metadata = prepare_dataset(text_options(corpus, "prepared", 3));
  EXPECT_EQ(metadata.at("format"), "extrap.dataset/1");
  EXPECT_EQ(metadata.at("splits").at("test").at("documents"), 4);
  EXPECT_EQ(metadata.at("splits").at("val").at("documents"), 4);
  EXPECT_EQ(metadata.at("splits").at("train").at("documents"), 32);

  const Dataset dataset = Dataset::load(root_ / "prepared");
  std::set<std::string> names;
  std::map<std::string, int64_t> stream_tokens;
  for (const auto& doc : dataset.documents()) {
    EXPECT_TRUE(names.insert(doc.name).second) << doc.name << " is in two splits";
    EXPECT_EQ(doc.offset, stream_tokens[doc.split]);
    stream_tokens[doc.split] += doc.tokens + 1;
    const auto& stream = dataset.split(doc.split);
    const auto expected = encode_bytes(read_text_file(corpus / doc.name));
    EXPECT_EQ(stream.slice(doc.offset, doc.tokens), std::vector<int64_t>(expected.begin(), expected.end())) << doc.name;
  }
  EXPECT_EQ(names.size(), 40u);
  for (const std::string split : {"train", "val", "test"}) {
    EXPECT_EQ(static_cast<int64_t>(dataset.split(split).size()), stream_tokens[split]);
    EXPECT_EQ(metadata.at("splits").at(split).at("tokens"), stream_tokens[split]);
  }
  EXPECT_EQ(dataset.split("train")[dataset.split("train").size() - 1], kEndOfText);
  EXPECT_EQ(dataset.checksum(), metadata.at("checksum"));
}

TEST_F(DataTest, SmallCorpusStillHoldsOutOneDocumentEach) {
  const auto options = text_options(make_text_corpus(3), "prepared", 1);
  const auto metadata = prepare_dataset(options);
  for (const std::string split : {"train", "val", "test"}) EXPECT_EQ(metadata.at("splits").at(split).at("documents"), 1);
}

TEST_F(DataTest, PrepareReplacesOnlyAPreviousDataset) {
  const auto options = text_options(make_text_corpus(10), "prepared", 1);
  prepare_dataset(options);
  prepare_dataset(options);
  EXPECT_NO_THROW(Dataset::load(options.output));

  write(root_ / "precious" / "thesis.tex", "years of work");
  auto unsafe = options;
  unsafe.output = root_ / "precious";
  EXPECT_NE(user_error_message([&] { prepare_dataset(unsafe); }).find("refusing"), std::string::npos);
  EXPECT_TRUE(fs::exists(root_ / "precious" / "thesis.tex"));
}

TEST_F(DataTest, LoadDetectsCorruption) {
  prepare_dataset(text_options(make_text_corpus(20), "prepared", 5));
  const fs::path test_bin = root_ / "prepared" / "test.bin";
  std::string bytes = read_text_file(test_bin);
  bytes[0] = static_cast<char>(bytes[0] ^ 0x01);
  write(test_bin, bytes);
  const std::string message = user_error_message([&] { Dataset::load(root_ / "prepared"); });
  EXPECT_NE(message.find("test.bin"), std::string::npos) << message;
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;

  write(test_bin, bytes + "x");
  EXPECT_NE(user_error_message([&] { Dataset::load(root_ / "prepared"); }).find("odd"), std::string::npos);

  fs::remove(root_ / "prepared" / "val.bin");
  EXPECT_NE(user_error_message([&] { Dataset::load(root_ / "prepared"); }).find("val.bin"), std::string::npos);
}

TEST_F(DataTest, LoadRejectsMissingDirectoryAndForeignMetadata) {
  EXPECT_NE(user_error_message([&] { Dataset::load(root_ / "absent"); }).find("absent"), std::string::npos);
  prepare_dataset(text_options(make_text_corpus(10), "prepared", 5));
  write(root_ / "prepared" / "metadata.json", R"({"format": "something/2"})");
  EXPECT_NE(user_error_message([&] { Dataset::load(root_ / "prepared"); }).find("metadata.json"), std::string::npos);
}

TEST_F(DataTest, UnknownSplitNameListsTheValidOnes) {
  prepare_dataset(text_options(make_text_corpus(10), "prepared", 5));
  const Dataset dataset = Dataset::load(root_ / "prepared");
  EXPECT_NE(user_error_message([&] { dataset.split("dev"); }).find("train, val or test"), std::string::npos);
}

TEST_F(DataTest, PrepareRejectsBadOptions) {
  auto options = text_options(make_text_corpus(10), "prepared", 1);
  options.corpus = "wikipedia";
  EXPECT_NE(user_error_message([&] { prepare_dataset(options); }).find("wikipedia"), std::string::npos);
  options.corpus = "text";
  options.val_fraction = 0.6;
  options.test_fraction = 0.5;
  EXPECT_NE(user_error_message([&] { prepare_dataset(options); }).find("below 1"), std::string::npos);
  options.val_fraction = 1.0;
  EXPECT_NE(user_error_message([&] { prepare_dataset(options); }).find("val_fraction"), std::string::npos);
  EXPECT_FALSE(fs::exists(options.output));
}

}  // namespace
}  // namespace extrap
