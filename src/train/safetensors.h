#pragma once
// Minimal safetensors reader/writer (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {string: string}}, then the raw little-endian tensor bytes. Files open in Python with
// `safetensors.torch.load_file`.
#include <filesystem>
#include <map>
#include <string>

#include <torch/torch.h>

namespace extrap {

using TensorMap = std::map<std::string, torch::Tensor>;

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Tensors come back on the CPU, contiguous. Throws UserError naming the file if it is malformed.
TensorMap load_safetensors(const std::filesystem::path& path, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace extrap
