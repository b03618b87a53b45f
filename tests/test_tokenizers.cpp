// Tokenizers: SentencePiece training on the train split only, lossless encoding, the byte length
// of every piece (bits per byte), and prepared SentencePiece datasets with their checks.
#include <fstream>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "common/files.h"
#include "data/dataset.h"
#include "data/tokenizer.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

// Prose over ~300 made-up words of two or three syllables (so BPE has merges to learn), with
// punctuation and digits.
std::string prose(int seed, int sentences) {
  static const char* syllables[] = {"ka", "lo", "mi", "sen", "tu", "ra", "vel", "do", "pi", "ner", "sha", "qu", "bo", "te", "gi"};
  std::string text;
  uint64_t state = uint64_t(seed) * 2654435761u + 17;
  auto next = [&] { return (state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (int s = 0; s < sentences; ++s) {
    for (int w = 0; w < 9; ++w) {
      const uint64_t word = next() % 300;
      text += w ? " " : "";
      for (uint64_t k = word, n = 2 + word % 2; n > 0; --n, k /= 15) text += syllables[k % 15];
    }
    text += (s % 3 == 0 ? ", number " + std::to_string(seed * 31 + s) + ".\n" : ".\n");
  }
  return text;
}

class TokenizerTest : public test::TempDirTest {
 protected:
  fs::path corpus(int documents) {
    const fs::path dir = root_ / "corpus";
    fs::create_directories(dir);
    for (int d = 0; d < documents; ++d) {
      std::ofstream(dir / ("doc" + std::to_string(100 + d) + ".txt"), std::ios::binary) << prose(d, 20 + d % 5);
    }
    return dir;
  }
  PrepareOptions sentencepiece_options(const fs::path& input, int64_t vocab) {
    PrepareOptions options;
    options.corpus = "text";
    options.input = input;
    options.output = root_ / "prepared";
    options.tokenizer = "sentencepiece";
    options.sentencepiece.vocab_size = vocab;
    options.val_fraction = 0.1;
    options.test_fraction = 0.1;
    return options;
  }
};

TEST(ByteTokenizer, EveryByteIsOneTokenOfOneByte) {
  const auto tokenizer = byte_tokenizer();
  EXPECT_EQ(tokenizer->vocab_size(), 257);
  EXPECT_EQ(tokenizer->end_of_text(), 256);
  EXPECT_EQ(tokenizer->encode("a\xff\n"), (std::vector<int64_t>{97, 255, 10}));
  EXPECT_EQ(tokenizer->token_bytes(), std::vector<int32_t>(257, 1));
}

TEST(SentencePiece, TrainedModelIsLosslessAndItsPiecesCountTheirBytes) {
  std::vector<std::string> documents;
  for (int d = 0; d < 20; ++d) documents.push_back(prose(d, 20));
  SentencePieceOptions options;
  options.vocab_size = 200;
  const auto tokenizer = sentencepiece_tokenizer(train_sentencepiece(documents, options), "test");
  EXPECT_EQ(tokenizer->vocab_size(), 200);
  EXPECT_EQ(tokenizer->type(), "sentencepiece");
  // Seen characters, line breaks and repeated spaces survive; the pieces' bytes add up to the text's.
  for (const std::string text : {prose(3, 4), std::string("  kalo mi\n\nsenka  tu \n"), std::string("\nkalo")}) {
    const auto ids = tokenizer->encode(text);
    EXPECT_LT(ids.size(), text.size()) << "BPE should merge";
    EXPECT_EQ(tokenizer->decode(ids), text);
    int64_t bytes = 0;
    for (int64_t id : ids) bytes += tokenizer->token_bytes()[std::size_t(id)];
    EXPECT_EQ(bytes, int64_t(text.size())) << text;
  }
  EXPECT_EQ(tokenizer->token_bytes()[std::size_t(tokenizer->end_of_text())], 1);
  EXPECT_EQ(tokenizer->encode("\n").size(), 1u);  // "\n" is a piece of its own
}

TEST(SentencePiece, TrainingIsDeterministic) {
  std::vector<std::string> documents;
  for (int d = 0; d < 10; ++d) documents.push_back(prose(d, 10));
  SentencePieceOptions options;
  options.vocab_size = 120;
  EXPECT_EQ(train_sentencepiece(documents, options), train_sentencepiece(documents, options));
}

TEST(SentencePiece, ByteFallbackKeepsUnseenCharacters) {
  std::vector<std::string> documents(10, prose(1, 10));
  SentencePieceOptions options;
  options.vocab_size = 400;
  options.byte_fallback = true;
  const auto tokenizer = sentencepiece_tokenizer(train_sentencepiece(documents, options), "test");
  const std::string unseen = "kalo \xc3\xa9t\xc3\xa9 mi";  // "kalo été mi"
  const auto ids = tokenizer->encode(unseen);
  EXPECT_EQ(tokenizer->decode(ids), unseen);
  int64_t bytes = 0;
  for (int64_t id : ids) bytes += tokenizer->token_bytes()[std::size_t(id)];
  EXPECT_EQ(bytes, int64_t(unseen.size()));
}

TEST(SentencePiece, BadModelAndTrainingErrorsAreUserErrors) {
  EXPECT_TRUE(contains(user_error_message([] { sentencepiece_tokenizer("not a model", "x.model"); }),
                       "x.model: not a SentencePiece model"));
  SentencePieceOptions options;
  options.vocab_size = 100000;  // far more pieces than the text has
  EXPECT_TRUE(contains(user_error_message([&] { train_sentencepiece({prose(0, 3)}, options); }),
                       "SentencePiece training failed"));
}

TEST_F(TokenizerTest, PreparedSentencePieceDatasetRecordsAndVerifiesItsModel) {
  const auto metadata = prepare_dataset(sentencepiece_options(corpus(30), 256));
  const auto& tokenizer = metadata.at("tokenizer");
  EXPECT_EQ(tokenizer.at("type"), "sentencepiece");
  EXPECT_EQ(tokenizer.at("vocab_size"), 256);
  EXPECT_EQ(tokenizer.at("trained").at("on"), "train split");
  const Dataset dataset = Dataset::load(root_ / "prepared");
  EXPECT_EQ(dataset.tokenizer().type(), "sentencepiece");
  // Every document decodes back to its file, and its pieces' bytes are the file's bytes.
  for (const auto& document : dataset.documents()) {
    const TokenStream& stream = dataset.split(document.split);
    const auto ids = stream.slice(document.offset, document.tokens);
    const std::string original = read_text_file(root_ / "corpus" / document.name);
    EXPECT_EQ(dataset.tokenizer().decode(ids), original) << document.name;
    int64_t bytes = 0;
    for (int64_t id : ids) bytes += dataset.tokenizer().token_bytes()[std::size_t(id)];
    EXPECT_EQ(bytes, int64_t(original.size()));
    EXPECT_EQ(int64_t(stream[document.offset + document.tokens]), dataset.tokenizer().end_of_text());
  }
  EXPECT_EQ(metadata.at("splits").at("val").at("unknown_tokens"), 0);
  // A changed model file is refused by checksum.
  std::ofstream(root_ / "prepared" / "tokenizer.model", std::ios::app) << "x";
  EXPECT_TRUE(contains(user_error_message([&] { Dataset::load(root_ / "prepared"); }), "tokenizer.model: checksum"));
}

TEST_F(TokenizerTest, TheTokenizerIsTrainedOnTheTrainSplitOnly) {
  // A word that occurs only in held-out documents must not become a piece.
  const fs::path dir = corpus(30);
  PrepareOptions options = sentencepiece_options(dir, 300);
  prepare_dataset(options);
  const Dataset first = Dataset::load(options.output);
  std::string held_out_name;
  for (const auto& document : first.documents("val")) held_out_name = document.name;
  const std::string marker = " hqhqhqhqhqhqhqhq";  // h and q are seen in training, "hq" never
  std::string held_out;
  for (int i = 0; i < 200; ++i) held_out += marker;
  std::ofstream(dir / held_out_name, std::ios::app) << held_out << "\n";
  prepare_dataset(options);
  const Dataset second = Dataset::load(options.output);
  EXPECT_GT(second.tokenizer().encode(marker).size(), 8u);
  // The control: the same text in a train document is learned.
  std::ofstream(dir / first.documents("train").front().name, std::ios::app) << held_out << "\n";
  prepare_dataset(options);
  EXPECT_LE(Dataset::load(options.output).tokenizer().encode(marker).size(), 4u);
}

TEST_F(TokenizerTest, AnExistingModelIsUsedAsGiven) {
  prepare_dataset(sentencepiece_options(corpus(30), 256));
  const std::string model = read_text_file(root_ / "prepared" / "tokenizer.model");
  write_file_atomic(root_ / "given.model", model);
  PrepareOptions options = sentencepiece_options(root_ / "corpus", 4096);
  options.tokenizer_model = root_ / "given.model";
  options.output = root_ / "again";
  const auto metadata = prepare_dataset(options);
  EXPECT_EQ(metadata.at("tokenizer").at("vocab_size"), 256);
  EXPECT_TRUE(metadata.at("tokenizer").contains("given"));
  EXPECT_EQ(read_text_file(root_ / "again" / "train.bin"), read_text_file(root_ / "prepared" / "train.bin"));
}

TEST_F(TokenizerTest, BadTokenizerOptionsAreRefusedBeforeWriting) {
  const fs::path dir = corpus(30);
  PrepareOptions options = sentencepiece_options(dir, 256);
  options.tokenizer = "wordpiece";
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(options); }), "--tokenizer wordpiece"));
  options = sentencepiece_options(dir, 8);
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(options); }), "--vocab-size 8"));
  options = sentencepiece_options(dir, 256);
  options.sentencepiece.model_type = "char";
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(options); }), "--model-type char"));
  options = sentencepiece_options(dir, 256);
  options.tokenizer_model = root_ / "missing.model";
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(options); }), "missing.model: tokenizer model not found"));
  options.tokenizer = "byte";
  EXPECT_TRUE(contains(user_error_message([&] { prepare_dataset(options); }), "--tokenizer-model needs"));
  EXPECT_FALSE(fs::exists(root_ / "prepared"));
}

}  // namespace
}  // namespace extrap
