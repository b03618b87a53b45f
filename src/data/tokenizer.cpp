#include "data/tokenizer.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <thread>

#include "common/error.h"
#include "common/files.h"
#include "data/corpus.h"
#include "data/sentencepiece/shim.h"

namespace extrap {
namespace {

constexpr int64_t kByteEndOfText = 256;

class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer() {
    token_bytes_.assign(kByteEndOfText + 1, 1);
    end_of_text_ = kByteEndOfText;
  }
  std::string type() const override { return "byte"; }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids(text.size());
    std::transform(text.begin(), text.end(), ids.begin(), [](char c) { return int64_t(static_cast<unsigned char>(c)); });
    return ids;
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string text;
    for (int64_t id : ids) text += id == kByteEndOfText ? '\n' : char(id);
    return text;
  }
};

// The dlopen'ed SentencePiece shim (data/sentencepiece/shim.h explains why it is not linked).
class SentencePieceLibrary {
 public:
  static const SentencePieceLibrary& get() {
    static const SentencePieceLibrary library;
    return library;
  }
  decltype(&extrap_spm_train) train;
  decltype(&extrap_spm_load) load;
  decltype(&extrap_spm_free) free_processor;
  decltype(&extrap_spm_pieces) pieces;
  decltype(&extrap_spm_eos_id) eos_id;
  decltype(&extrap_spm_unk_id) unk_id;
  decltype(&extrap_spm_token_bytes) token_bytes;
  decltype(&extrap_spm_encode) encode;
  decltype(&extrap_spm_decode) decode;

 private:
  SentencePieceLibrary() {
    const fs::path exe = fs::read_symlink("/proc/self/exe").parent_path();
    std::string tried;
    for (const fs::path& dir : {exe, exe.parent_path()}) {
      const fs::path path = dir / kShimName;
      tried += (tried.empty() ? "" : ", ") + path.string();
      handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle_ != nullptr) break;
    }
    if (handle_ == nullptr) throw UserError(std::string("SentencePiece support not found (tried ") + tried + ")");
    symbol(train, "extrap_spm_train");
    symbol(load, "extrap_spm_load");
    symbol(free_processor, "extrap_spm_free");
    symbol(pieces, "extrap_spm_pieces");
    symbol(eos_id, "extrap_spm_eos_id");
    symbol(unk_id, "extrap_spm_unk_id");
    symbol(token_bytes, "extrap_spm_token_bytes");
    symbol(encode, "extrap_spm_encode");
    symbol(decode, "extrap_spm_decode");
  }
  template <typename F>
  void symbol(F& function, const char* name) {
    function = reinterpret_cast<F>(::dlsym(handle_, name));
    if (function == nullptr) throw UserError(std::string(kShimName) + ": missing " + name);
  }
  static constexpr const char* kShimName = "libextrap_sentencepiece.so";
  void* handle_ = nullptr;  // kept loaded for the life of the process
};

// Takes ownership of a malloc'ed buffer from the shim.
struct Malloced {
  void* pointer = nullptr;
  ~Malloced() { std::free(pointer); }
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model, const std::string& source) : library_(SentencePieceLibrary::get()) {
    char* error = nullptr;
    processor_ = library_.load(model.data(), model.size(), &error);
    if (processor_ == nullptr) {
      const Malloced owned{error};
      throw UserError(source + ": not a SentencePiece model (" + error + ")");
    }
    if (library_.eos_id(processor_) < 0) {
      library_.free_processor(processor_);
      throw UserError(source + ": the SentencePiece model has no </s> piece to separate documents");
    }
    end_of_text_ = library_.eos_id(processor_);
    token_bytes_.resize(std::size_t(library_.pieces(processor_)));
    library_.token_bytes(processor_, token_bytes_.data());
  }
  ~SentencePieceTokenizer() override { library_.free_processor(processor_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::string type() const override { return "sentencepiece"; }
  int64_t unknown_id() const override { return library_.unk_id(processor_); }
  std::vector<int64_t> encode(const std::string& text) const override {
    int* ids = nullptr;
    std::size_t count = 0;
    if (library_.encode(processor_, text.data(), text.size(), &ids, &count) != 0) {
      throw std::runtime_error("SentencePiece could not encode a text");
    }
    const Malloced owned{ids};
    return {ids, ids + count};
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    const std::vector<int> narrow(ids.begin(), ids.end());
    char* text = nullptr;
    std::size_t size = 0;
    if (library_.decode(processor_, narrow.data(), narrow.size(), &text, &size) != 0) {
      throw std::runtime_error("SentencePiece could not decode ids");
    }
    const Malloced owned{text};
    return {text, size};
  }

 private:
  const SentencePieceLibrary& library_;
  void* processor_ = nullptr;
};

class ExternalTokenizer final : public Tokenizer {
 public:
  ExternalTokenizer(int64_t vocab_size, int64_t end_of_text, const fs::path& vocabulary) {
    end_of_text_ = end_of_text;
    token_bytes_.assign(std::size_t(vocab_size), 0);
    known_bytes_ = !vocabulary.empty();
    if (known_bytes_) read_vocabulary(vocabulary);
    token_bytes_[std::size_t(end_of_text)] = 1;
  }
  std::string type() const override { return "external"; }
  bool encodes_text() const override { return false; }
  std::vector<int64_t> encode(const std::string&) const override {
    throw UserError("this dataset's tokens were made outside extrap (external tokenizer): it cannot encode text");
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string text;
    for (int64_t id : ids) text += "<" + std::to_string(id) + ">";
    return text;
  }

 private:
  // Byte-level BPE vocabularies map each byte to one printable code point, so a token's byte
  // length is the number of code points of its string.
  void read_vocabulary(const fs::path& path) {
    const nlohmann::json file = read_json_file(path);
    const nlohmann::json& vocab = file.contains("model") ? file.at("model").at("vocab") : file;
    if (!vocab.is_object()) throw UserError(path.string() + ": expected a {token: id} object");
    for (const auto& [token, id_value] : vocab.items()) {
      const int64_t id = id_value.get<int64_t>();
      if (id < 0 || id >= vocab_size()) {
        throw UserError(path.string() + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(vocab_size()));
      }
      token_bytes_[std::size_t(id)] =
          int32_t(std::count_if(token.begin(), token.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
    }
  }
};

}  // namespace

std::unique_ptr<Tokenizer> byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::string train_sentencepiece(const std::vector<std::string>& documents, const SentencePieceOptions& options) {
  if (options.model_type != "bpe" && options.model_type != "unigram") {
    throw UserError("--model-type " + options.model_type + ": expected bpe or unigram");
  }
  // The trainer reads lines: "\n" is a piece of its own, never learned.
  std::vector<std::string> lines;
  for (const auto& document : documents) {
    for (auto& line : split_lines(document)) {
      if (!line.empty()) lines.push_back(std::move(line));
    }
  }
  const std::map<std::string, std::string> settings = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"character_coverage", "1.0"},
      {"user_defined_symbols", "\n"},
      {"unk_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", std::to_string(std::max(1u, std::thread::hardware_concurrency()))},
      {"minloglevel", "2"}};
  std::vector<const char*> keys, values, starts;
  std::vector<std::size_t> sizes;
  for (const auto& [key, value] : settings) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  for (const auto& line : lines) {
    starts.push_back(line.data());
    sizes.push_back(line.size());
  }
  char *model = nullptr, *error = nullptr;
  std::size_t model_size = 0;
  const int failed = SentencePieceLibrary::get().train(keys.data(), values.data(), int(keys.size()), starts.data(),
                                                       sizes.data(), lines.size(), unsigned(options.seed), &model,
                                                       &model_size, &error);
  const Malloced owned_model{model}, owned_error{error};
  if (failed) throw UserError(std::string("SentencePiece training failed: ") + error);
  return {model, model_size};
}

std::unique_ptr<Tokenizer> sentencepiece_tokenizer(const std::string& model, const std::string& source) {
  return std::make_unique<SentencePieceTokenizer>(model, source);
}

std::unique_ptr<Tokenizer> external_tokenizer(int64_t vocab_size, int64_t end_of_text, const fs::path& vocabulary) {
  return std::make_unique<ExternalTokenizer>(vocab_size, end_of_text, vocabulary);
}

std::unique_ptr<Tokenizer> load_tokenizer(const nlohmann::json& description, const fs::path& dir,
                                          const fs::path& metadata_path) {
  const std::string type = description.at("type").get<std::string>();
  std::unique_ptr<Tokenizer> tokenizer;
  if (type == "byte") {
    tokenizer = byte_tokenizer();
  } else if (type == "sentencepiece") {
    const fs::path model_path = dir / description.at("model").get<std::string>();
    if (!fs::is_regular_file(model_path)) throw UserError(model_path.string() + ": tokenizer model missing");
    const std::string model = read_text_file(model_path);
    const std::string checksum = fnv1a64_hex(model.data(), model.size());
    if (checksum != description.at("checksum").get<std::string>()) {
      throw UserError(model_path.string() + ": checksum " + checksum + " differs from metadata.json's; re-run `extrap data`");
    }
    tokenizer = sentencepiece_tokenizer(model, model_path.string());
  } else if (type == "external") {
    tokenizer = external_tokenizer(description.at("vocab_size").get<int64_t>(), description.at("end_of_text").get<int64_t>(),
                                   description.value("vocabulary_file", std::string()));
  } else {
    throw UserError(metadata_path.string() + ": unknown tokenizer type '" + type + "'");
  }
  if (tokenizer->vocab_size() != description.at("vocab_size").get<int64_t>() ||
      tokenizer->end_of_text() != description.at("end_of_text").get<int64_t>()) {
    throw UserError(metadata_path.string() + ": the tokenizer has vocabulary " + std::to_string(tokenizer->vocab_size()) +
                    " and end-of-text " + std::to_string(tokenizer->end_of_text()) + ", metadata.json says " +
                    description.dump());
  }
  return tokenizer;
}

}  // namespace extrap
