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
  return p.slice(0, block.q_begin, block.q_end).unsqueeze(1) - p.slice(0, block.k_begin, block.k_end).unsqueeze(0);
}

}  // namespace extrap
