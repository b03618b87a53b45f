// Token shards read in place: llm.c (versions 1 and 7) and nanoGPT files on generated fixtures,
// the descriptor dataset, and one clear error for every bad header, size, token or option.
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "common/files.h"
#include "data/dataset.h"
#include "data/shards.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

// Documents of 1..9 tokens, each preceded by `eot` as llm.c's scripts write them.
std::vector<uint32_t> documents_stream(int count, uint32_t eot, uint32_t first) {
  std::vector<uint32_t> tokens;
  for (int d = 0; d < count; ++d) {
    tokens.push_back(eot);
    for (int t = 0; t <= d % 9; ++t) tokens.push_back(first + uint32_t(d * 13 + t) % 1000);
  }
  return tokens;
}

class ShardTest : public test::TempDirTest {
 protected:
  ShardOptions llmc_options() {
    ShardOptions options;
    options.layout = "llmc";
    options.input = root_ / "shards";
    return options;
  }
  void write_llmc(int version) {
    fs::create_directories(root_ / "shards");
    write_llmc_shard(root_ / "shards" / "fineweb_val_000000.bin", documents_stream(20, 50256, 100), version);
    write_llmc_shard(root_ / "shards" / "fineweb_train_000001.bin", documents_stream(30, 50256, 0), version);
    write_llmc_shard(root_ / "shards" / "fineweb_train_000002.bin", documents_stream(40, 50256, 500), version);
  }
  std::string prepare_error(const ShardOptions& options) {
    return user_error_message([&] { prepare_shard_dataset(options, root_ / "described"); });
  }
};

TEST_F(ShardTest, LlmcShardsAreReadInPlaceInOrder) {
  for (int version : {1, 7}) {
    write_llmc(version);
    const auto metadata = prepare_shard_dataset(llmc_options(), root_ / "described");
    EXPECT_EQ(metadata.at("format"), kShardsFormat);
    EXPECT_EQ(metadata.at("tokenizer").at("vocab_size"), 50257);
    const Dataset dataset = Dataset::load(root_ / "described");
    EXPECT_EQ(dataset.layout(), "llmc");
    std::vector<uint32_t> expected = documents_stream(30, 50256, 0);
    const auto more = documents_stream(40, 50256, 500);
    expected.insert(expected.end(), more.begin(), more.end());
    const TokenStream& train = dataset.split("train");
    ASSERT_EQ(train.size(), int64_t(expected.size()));
    ASSERT_EQ(train.segments().size(), 2u);
    EXPECT_EQ(train.segments()[0].width, version == 1 ? 2 : 4);
    for (int64_t i = 0; i < train.size(); ++i) ASSERT_EQ(train[i], expected[std::size_t(i)]) << i;
    // A copy across the shard boundary.
    const auto across = train.slice(int64_t(documents_stream(30, 50256, 0).size()) - 2, 4);
    EXPECT_EQ(across[2], 50256);
    // The held-out documents are the spans between end-of-text tokens; test is the val shards.
    EXPECT_EQ(dataset.documents("val").size(), 19u);  // the last document has no end-of-text after it
    EXPECT_EQ(dataset.documents("val")[3].tokens, 4);
    EXPECT_EQ(dataset.split("test").size(), dataset.split("val").size());
    EXPECT_TRUE(dataset.tokenizer().token_bytes().empty());  // no vocabulary file: bits per byte unknown
  }
}

TEST_F(ShardTest, NanogptBinsWithMetaJson) {
  fs::create_directories(root_ / "nano");
  write_nanogpt_bin(root_ / "nano" / "train.bin", documents_stream(30, 999, 0));
  write_nanogpt_bin(root_ / "nano" / "val.bin", documents_stream(10, 999, 0));
  ShardOptions options;
  options.layout = "nanogpt";
  options.input = root_ / "nano";
  EXPECT_TRUE(contains(prepare_error(options), "carry no vocabulary"));
  write_file_atomic(root_ / "nano" / "meta.json", R"({"vocab_size": 1000, "end_of_text": 999})");
  prepare_shard_dataset(options, root_ / "described");
  const Dataset dataset = Dataset::load(root_ / "described");
  EXPECT_EQ(dataset.tokenizer().vocab_size(), 1000);
  EXPECT_EQ(dataset.split("val").size(), int64_t(documents_stream(10, 999, 0).size()));
  // Command-line values win over meta.json; a token outside the vocabulary is named.
  options.vocab_size = 50;
  EXPECT_TRUE(contains(prepare_error(options), "--end-of-text 999 must be below --vocab-size 50"));
  options.end_of_text = 10;
  EXPECT_TRUE(contains(prepare_error(options), "train.bin: token 0 is 999, outside the vocabulary of 50"));
}

TEST_F(ShardTest, VocabularyFileGivesByteLengths) {
  write_llmc(1);
  // GPT-2's byte-to-unicode mapping: a leading space is "Ġ" (two UTF-8 bytes, one byte of text).
  write_file_atomic(root_ / "encoder.json", R"({"a": 0, "\u0120the": 1, "<|endoftext|>": 50256})");
  ShardOptions options = llmc_options();
  options.vocabulary = root_ / "encoder.json";
  prepare_shard_dataset(options, root_ / "described");
  const Dataset dataset = Dataset::load(root_ / "described");
  const auto& bytes = dataset.tokenizer().token_bytes();
  ASSERT_EQ(bytes.size(), 50257u);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[1], 4);
  EXPECT_EQ(bytes[50256], 1);  // end-of-text counts one byte, as everywhere
}

TEST_F(ShardTest, BadShardsAreNamedWithTheirValue) {
  write_llmc(1);
  const fs::path shard = root_ / "shards" / "fineweb_train_000001.bin";
  const std::string good = read_text_file(shard);
  auto with_word = [&](int index, int32_t value) {
    std::string bytes = good;
    std::memcpy(bytes.data() + 4 * index, &value, 4);
    write_file_atomic(shard, bytes);
  };
  with_word(0, 12345);
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "fineweb_train_000001.bin: header magic 12345"));
  with_word(1, 3);
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "header version 3 with magic 20240520 (expected 1)"));
  write_file_atomic(shard, good.substr(0, good.size() - 2));
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "the file has " + std::to_string(good.size() - 2) + " bytes"));
  write_file_atomic(shard, good.substr(0, 100));
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "shorter than llm.c's 1024-byte header"));
  write_llmc_shard(shard, {50256, 1, 60000}, 1);
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "token 2 is 60000, outside the vocabulary of 50257"));
  fs::remove(shard);
  fs::remove(root_ / "shards" / "fineweb_train_000002.bin");
  EXPECT_TRUE(contains(prepare_error(llmc_options()), "no train shard (expected *_train_*.bin)"));
  EXPECT_FALSE(fs::exists(root_ / "described"));
}

TEST_F(ShardTest, AShardChangedAfterDescribingIsRefusedOnLoad) {
  write_llmc(7);
  prepare_shard_dataset(llmc_options(), root_ / "described");
  write_llmc_shard(root_ / "shards" / "fineweb_val_000000.bin", documents_stream(20, 50256, 101), 7);
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(root_ / "described"); }),
                       "fineweb_val_000000.bin: changed since `extrap data` described it"));
  fs::remove(root_ / "shards" / "fineweb_val_000000.bin");
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(root_ / "described"); }), "shard missing"));
}

}  // namespace
}  // namespace extrap
