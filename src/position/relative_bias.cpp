#include "position/relative_bias.h"

namespace extrap {

torch::Tensor toeplitz_distances(const BlockRange& block, const torch::TensorOptions& options) {
  return torch::arange(block.min_distance(), block.max_distance() + 1, options.dtype(torch::kFloat64));
}

torch::Tensor toeplitz_expand(const torch::Tensor& per_distance, int64_t rows, int64_t keys) {
  const int64_t last = per_distance.dim() - 1;
  TORCH_CHECK(per_distance.size(last) == rows + keys - 1, "toeplitz_expand: expected ", rows + keys - 1,
              " distances, got ", per_distance.size(last));
  // Reversed, window s of the values holds values[n-1-s-c] at column c; window s = rows-1-r is row r.
  // unfold is a view; the final flip of the rows is the one copy.
  return per_distance.flip(last).unfold(last, keys, 1).flip(last);
}

torch::Tensor distance_matrix(const Positions& positions, const BlockRange& block) {
  const auto& p = positions.values;
  return p.slice(-1, block.q_begin, block.q_end).unsqueeze(-1) - p.slice(-1, block.k_begin, block.k_end).unsqueeze(-2);
}

torch::Tensor batch_major(const torch::Tensor& heads_first) {
  return heads_first.dim() == 4 ? heads_first.transpose(0, 1) : heads_first;
}

std::vector<int64_t> heads_first_sizes(int64_t heads, const torch::Tensor& distances) {
  std::vector<int64_t> sizes{heads};
  for (const int64_t size : distances.sizes()) sizes.push_back(size);
  return sizes;
}

}  // namespace extrap
