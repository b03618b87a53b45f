#pragma once
// Tokenizers: how text becomes the token ids a dataset stores, and how many bytes of text each id
// stands for (so bits per byte compare across tokenizers). Torch-free.
//   byte            one token per byte (0..255), end-of-text 256: the default, and the synthetic tasks'
//   sentencepiece   a SentencePiece BPE or unigram model, trained on the train split by `extrap data`
//                   or given as a file; its end-of-text is the model's </s>
//   external        ids made elsewhere (llm.c and nanoGPT shards): no text encoding; byte lengths come
//                   from a byte-level BPE vocabulary file when one is given
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

namespace fs = std::filesystem;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string type() const = 0;
  int64_t vocab_size() const { return int64_t(token_bytes_.size()); }
  int64_t end_of_text() const { return end_of_text_; }
  // Whether text can be encoded (probes build their prompts as text).
  virtual bool encodes_text() const { return true; }
  // The id that stands for unseen characters, or -1 when there is none.
  virtual int64_t unknown_id() const { return -1; }
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // Bytes of text per id; the end-of-text token counts one byte (the byte tokenizer's 256 does too).
  // Empty when unknown (external ids without a vocabulary file): bits per byte are then not reported.
  const std::vector<int32_t>& token_bytes() const { return known_bytes_ ? token_bytes_ : none_; }

 protected:
  std::vector<int32_t> token_bytes_;  // sized to the vocabulary
  bool known_bytes_ = true;
  int64_t end_of_text_ = 0;

 private:
  std::vector<int32_t> none_;
};

std::unique_ptr<Tokenizer> byte_tokenizer();

// SentencePiece training settings, recorded in the dataset metadata.
struct SentencePieceOptions {
  int64_t vocab_size = 4096;
  std::string model_type = "bpe";  // bpe | unigram
  bool byte_fallback = false;
  int64_t max_sentences = 2000000;  // training lines sampled (SentencePiece's input_sentence_size)
  uint64_t seed = 0;
};

// Trains on `documents` (the train split only), lossless on seen characters: identity normalization,
// no dummy prefix, whitespace kept, "\n" a piece of its own, every character covered. Returns the
// serialized model. Throws UserError with SentencePiece's message on failure.
std::string train_sentencepiece(const std::vector<std::string>& documents, const SentencePieceOptions& options);

// A SentencePiece model (serialized proto); `source` names it in errors.
std::unique_ptr<Tokenizer> sentencepiece_tokenizer(const std::string& model, const std::string& source);

// External ids: `vocab_size` ids with end-of-text `end_of_text`; byte lengths from a byte-level BPE
// vocabulary (GPT-2's encoder.json, or a Hugging Face tokenizer.json) when `vocabulary` is given.
std::unique_ptr<Tokenizer> external_tokenizer(int64_t vocab_size, int64_t end_of_text, const fs::path& vocabulary);

// The tokenizer a dataset's metadata describes ("tokenizer" object; a sentencepiece model is the
// file it names inside `dir`, checked against its checksum). Throws UserError naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const nlohmann::json& description, const fs::path& dir,
                                          const fs::path& metadata_path);

}  // namespace extrap
