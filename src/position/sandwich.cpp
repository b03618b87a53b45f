// Sandwich: a parameter-free relative bias from sinusoidal embeddings (see sandwich.h).
#include "position/sandwich.h"

#include <cmath>

#include "position/relative_bias.h"

namespace extrap {

Sandwich::Sandwich(int64_t n_heads, int64_t dim) : n_heads_(n_heads), dim_(dim) {
  const auto k = torch::arange(1, dim / 2 + 1, torch::kFloat64);
  frequencies_ = torch::pow(10000.0, -2.0 * k / double(dim));
  head_scales_ = double(n_heads) / (8.0 * torch::arange(1, n_heads + 1, torch::kFloat64));
}

torch::Tensor Sandwich::bias_of_distances(const torch::Tensor& distances) const {
  const auto d = distances.to(torch::kFloat64);
  const auto frequencies = frequencies_.to(d.device());
  const auto dot = torch::cos(d.unsqueeze(-1) * frequencies).sum(-1) - double(dim_ / 2);
  std::vector<int64_t> shape{n_heads_};
  for (int64_t i = 0; i < d.dim(); ++i) shape.push_back(1);
  return dot.unsqueeze(0) * head_scales_.to(d.device()).view(shape);
}

const torch::Tensor& Sandwich::table(int64_t count, const torch::Device& device) {
  if (!table_.defined() || table_.size(1) < count || table_.device() != device) {
    int64_t size = 256;
    while (size < count) size *= 2;
    const auto options = torch::TensorOptions().dtype(torch::kFloat64).device(device);
    table_ = bias_of_distances(torch::arange(size, options)).to(torch::kFloat32);
  }
  return table_;
}

torch::Tensor Sandwich::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                                   int64_t k_end) {
  const BlockRange block{q_begin, q_end, k_begin, k_end};
  const auto device = positions.values.device();
  if (positions.is_arange) {
    // The block's n distances (future keys, d < 0, are masked: clamped to 0) looked up and expanded.
    const auto distances = torch::arange(block.min_distance(), block.max_distance() + 1,
                                         torch::TensorOptions().dtype(torch::kInt64).device(device))
                               .clamp_min_(0);
    const auto& values = table(std::max<int64_t>(block.max_distance(), 0) + 1, device);
    return toeplitz_expand(values.index_select(1, distances), block.rows(), block.keys());
  }
  // Explicit positions: p_i . p_j as the product of the [rows, d'] and [keys, d'] sinusoid tables (a
  // GEMM in float64, the paper's own form), instead of a cosine per entry and frequency.
  const auto embed = [&](int64_t begin, int64_t end) {
    const auto angles = positions.values.slice(-1, begin, end).to(torch::kFloat64).unsqueeze(-1) * frequencies_.to(device);
    return torch::cat({torch::cos(angles), torch::sin(angles)}, -1);  // [..., n, d']
  };
  const auto dot = torch::matmul(embed(q_begin, q_end), embed(k_begin, k_end).transpose(-2, -1)) - double(dim_ / 2);
  // [rows, keys] -> [H, rows, keys]; per row [B, rows, keys] -> [B, H, rows, keys].
  return (dot.unsqueeze(-3) * head_scales_.to(device).view({n_heads_, 1, 1})).to(torch::kFloat32);
}

// The sinusoid dimension d': `dim`, or the head dimension when 0; even either way.
static int64_t sinusoid_dim(const nlohmann::json& p, const ModelShape& shape) {
  int64_t dim = param<int64_t>(p, "dim");
  if (dim < 0) reject_param("dim", "must be >= 0, got " + std::to_string(dim));
  if (dim == 0) {
    dim = shape.head_dim();
    if (dim % 2 != 0) {
      reject_param("dim", "0 means the head dimension, which is odd (" + std::to_string(dim) +
                              " = model.d_model / model.n_heads); set an even position.dim");
    }
  } else if (dim % 2 != 0) {
    reject_param("dim", "must be even, got " + std::to_string(dim));
  }
  return dim;
}

EXTRAP_REGISTER_SCHEME(sandwich, [] {
  SchemeInfo info;
  info.name = "sandwich";
  info.description = "fixed bias (p_i . p_j - d'/2) / (8h/H) from d'-dimensional sinusoidal embeddings";
  info.reference = "Chi et al. 2023, Dissecting Transformer Length Extrapolation via the Lens of Receptive Field Analysis";
  info.params = {{"dim", 0, "sinusoid dimension d' (even); 0 means the head dimension d_model / n_heads"}};
  return define_scheme<Sandwich, kBiasHook>(info, sinusoid_dim, [](int64_t dim, const ModelShape& shape) {
    return std::make_shared<Sandwich>(shape.n_heads, dim);
  });
}());

}  // namespace extrap
