// libextrap_sentencepiece.so: see shim.h for why this is a separate, dlopen'ed library.
#include "data/sentencepiece/shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

char* copy_out(const std::string& text, size_t* size = nullptr) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  if (size != nullptr) *size = text.size();
  return out;
}

class Lines final : public sentencepiece::SentenceIterator {
 public:
  Lines(const char* const* lines, const size_t* sizes, size_t count) : lines_(lines), sizes_(sizes), count_(count) {
    load();
  }
  bool done() const override { return next_ >= count_; }
  void Next() override {
    ++next_;
    load();
  }
  const std::string& value() const override { return current_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (next_ < count_) current_.assign(lines_[next_], sizes_[next_]);
  }
  const char* const* lines_;
  const size_t* sizes_;
  size_t count_;
  size_t next_ = 0;
  std::string current_;
};

int32_t piece_bytes(const std::string& piece) {
  static const std::string kSpace = "\xe2\x96\x81";
  int32_t bytes = 0;
  for (size_t i = 0; i < piece.size(); ++bytes) i += piece.compare(i, kSpace.size(), kSpace) == 0 ? kSpace.size() : 1;
  return bytes;
}

sentencepiece::SentencePieceProcessor& processor_of(void* p) { return *static_cast<sentencepiece::SentencePieceProcessor*>(p); }

}  // namespace

extern "C" {

int extrap_spm_train(const char* const* keys, const char* const* values, int n, const char* const* lines,
                     const size_t* sizes, size_t count, unsigned seed, char** model, size_t* model_size,
                     char** error) {
  std::unordered_map<std::string, std::string> settings;
  for (int i = 0; i < n; ++i) settings[keys[i]] = values[i];
  sentencepiece::SetRandomGeneratorSeed(seed);
  Lines iterator(lines, sizes, count);
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(settings, &iterator, &serialized);
  if (!status.ok()) {
    *error = copy_out(status.ToString());
    return 1;
  }
  *model = copy_out(serialized, model_size);
  return 0;
}

void* extrap_spm_load(const char* model, size_t size, char** error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->LoadFromSerializedProto(std::string(model, size));
  if (!status.ok()) {
    *error = copy_out(status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

void extrap_spm_free(void* processor) { delete &processor_of(processor); }
int extrap_spm_pieces(void* processor) { return processor_of(processor).GetPieceSize(); }
int extrap_spm_eos_id(void* processor) { return processor_of(processor).eos_id(); }
int extrap_spm_unk_id(void* processor) { return processor_of(processor).unk_id(); }

void extrap_spm_token_bytes(void* processor, int32_t* out) {
  const auto& p = processor_of(processor);
  for (int id = 0; id < p.GetPieceSize(); ++id) {
    const bool one_byte = p.IsControl(id) || p.IsUnknown(id) || p.IsByte(id);
    out[id] = one_byte ? 1 : piece_bytes(p.IdToPiece(id));
  }
}

int extrap_spm_encode(void* processor, const char* text, size_t size, int** ids, size_t* count) {
  std::vector<int> encoded;
  if (!processor_of(processor).Encode(std::string(text, size), &encoded).ok()) return 1;
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (encoded.size() + 1)));
  std::memcpy(*ids, encoded.data(), sizeof(int) * encoded.size());
  *count = encoded.size();
  return 0;
}

int extrap_spm_decode(void* processor, const int* ids, size_t count, char** text, size_t* size) {
  std::string decoded;
  if (!processor_of(processor).Decode(std::vector<int>(ids, ids + count), &decoded).ok()) return 1;
  *text = copy_out(decoded, size);
  return 0;
}

}  // extern "C"
