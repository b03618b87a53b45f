#pragma once
// The C interface of libextrap_sentencepiece.so, a shim around Debian's libsentencepiece. That
// library embeds its own copy of protobuf-lite, whose exported symbols clash with the full protobuf
// LibTorch loads (linked together, protobuf's initialisers call SentencePiece's copy and crash at
// start-up). So the shim is never linked: data/tokenizer.cpp loads it with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND), which keeps each copy bound to its own symbols. Buffers the shim returns are
// malloc'ed and freed by the caller with free().
#include <cstddef>
#include <cstdint>

extern "C" {

// Trains a model on `count` lines with `n` settings (key=value); 0 on success, with the serialized
// model in *model; otherwise the error text in *error.
int extrap_spm_train(const char* const* keys, const char* const* values, int n, const char* const* lines,
                     const size_t* sizes, size_t count, unsigned seed, char** model, size_t* model_size,
                     char** error);
// A processor for a serialized model, or null with the error text in *error.
void* extrap_spm_load(const char* model, size_t size, char** error);
void extrap_spm_free(void* processor);
int extrap_spm_pieces(void* processor);
int extrap_spm_eos_id(void* processor);
int extrap_spm_unk_id(void* processor);
// Bytes of text per id (extrap_spm_pieces entries): "▁" counts one byte; control, unknown and
// byte pieces one each.
void extrap_spm_token_bytes(void* processor, int32_t* out);
int extrap_spm_encode(void* processor, const char* text, size_t size, int** ids, size_t* count);
int extrap_spm_decode(void* processor, const int* ids, size_t count, char** text, size_t* size);
}
