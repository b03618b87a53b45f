#pragma once
// Helpers shared by the relative-position bias schemes (t5, kerple, sandwich, fire, dpb): the
// distances of one block of scores and the expansion of a per-distance bias into a block.
//
// score_bias is asked for query rows [q_begin, q_end) against keys [k_begin, k_end). For arange
// positions the bias of a distance-only scheme is a Toeplitz block: entry (r, c) depends only on
// (q_begin + r) - (k_begin + c), which runs over the n = rows + keys - 1 consecutive integers
// d_min = q_begin - (k_end - 1) ... d_max = (q_end - 1) - k_begin. Such a scheme evaluates its
// function on those n distances only ([H, n], cheap) and expands them with one copy into
// [H, rows, keys] (toeplitz_expand): no distance or index tensor of the block's size is built or kept.
// For other positions (random, float) the [rows, keys] distance matrix is computed from the values,
// per row ([B, rows, keys]) when each window has its own positions.
#include "position/scheme.h"

namespace extrap {

struct BlockRange {
  int64_t q_begin, q_end, k_begin, k_end;
  int64_t rows() const { return q_end - q_begin; }
  int64_t keys() const { return k_end - k_begin; }
  int64_t min_distance() const { return q_begin - (k_end - 1); }
  int64_t max_distance() const { return (q_end - 1) - k_begin; }
  int64_t distance_count() const { return rows() + keys() - 1; }
};

// The consecutive distances d_min ... d_max of an arange block as float64 [n], on `options`' device.
torch::Tensor toeplitz_distances(const BlockRange& block, const torch::TensorOptions& options);

// Expands per-distance values [..., n] (index m holds distance d_min + m) into [..., rows, keys] with
// out[..., r, c] = values[..., r - c + keys - 1], i.e. the value of distance (q_begin + r) - (k_begin + c).
// One copy; differentiable (gradients of the entries sharing a distance are summed).
torch::Tensor toeplitz_expand(const torch::Tensor& per_distance, int64_t rows, int64_t keys);

// positions[i] - positions[j] for the block's rows and keys: float64 [rows, keys], or [B, rows, keys]
// for per-row positions.
torch::Tensor distance_matrix(const Positions& positions, const BlockRange& block);

// A bias computed heads first from per-row distances, [H, B, rows, keys], in score_bias's layout
// [B, H, rows, keys]; a bias of one row, [H, rows, keys], as it is.
torch::Tensor batch_major(const torch::Tensor& heads_first);

// The sizes of `distances` with `heads` in front: the view of a per-distance lookup's result.
std::vector<int64_t> heads_first_sizes(int64_t heads, const torch::Tensor& distances);

// Scheme parameters are rebuilt with the model; a derived tensor kept outside the module (a lookup
// table) follows the device of the positions with this.
inline void follow_device(torch::Tensor& t, const torch::Device& device) {
  if (t.device() != device) t = t.to(device);
}

}  // namespace extrap
