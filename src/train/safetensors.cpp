#include "train/safetensors.h"

#include <fstream>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{torch::kFloat32, "F32"}, {torch::kFloat64, "F64"}, {torch::kInt64, "I64"},
                                 {torch::kInt32, "I32"},   {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"}};

const char* dtype_name(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  throw std::runtime_error(std::string("safetensors: unsupported dtype ") + c10::toString(type));
}

torch::ScalarType dtype_from_name(const std::string& name, const std::string& file) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  throw UserError(file + ": unsupported safetensors dtype " + name);
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> ordered;
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    const int64_t bytes = cpu.numel() * cpu.element_size();
    header[name] = {{"dtype", dtype_name(cpu.scalar_type())}, {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    ordered.push_back(cpu);
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes
  std::string contents;
  contents.reserve(8 + header_text.size() + offset);
  const uint64_t header_size = header_text.size();
  for (int i = 0; i < 8; ++i) contents.push_back(char((header_size >> (8 * i)) & 0xff));
  contents += header_text;
  for (const auto& t : ordered) contents.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomic(path, contents);
}

TensorMap load_safetensors(const std::filesystem::path& path, std::map<std::string, std::string>* metadata) {
  const std::string file = path.string();
  const std::string contents = read_text_file(path);
  if (contents.size() < 8) throw UserError(file + ": truncated safetensors file");
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= uint64_t(static_cast<unsigned char>(contents[i])) << (8 * i);
  if (header_size > contents.size() - 8) throw UserError(file + ": corrupted safetensors header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(contents.substr(8, header_size));
  } catch (const nlohmann::json::parse_error&) {
    throw UserError(file + ": corrupted safetensors header");
  }
  const std::size_t data_start = 8 + header_size;
  TensorMap tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (metadata) *metadata = it->get<std::map<std::string, std::string>>();
      continue;
    }
    const auto dtype = dtype_from_name(it->at("dtype").get<std::string>(), file);
    const auto shape = it->at("shape").get<std::vector<int64_t>>();
    const auto begin = it->at("data_offsets")[0].get<std::size_t>();
    const auto end = it->at("data_offsets")[1].get<std::size_t>();
    auto tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (end < begin || data_start + end > contents.size() ||
        end - begin != std::size_t(tensor.numel() * tensor.element_size())) {
      throw UserError(file + ": tensor " + it.key() + " has inconsistent offsets (file truncated or corrupted)");
    }
    std::memcpy(tensor.data_ptr(), contents.data() + data_start + begin, end - begin);
    tensors[it.key()] = tensor;
  }
  return tensors;
}

}  // namespace extrap
