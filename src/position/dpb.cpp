// Dynamic position bias: an MLP over the (log) distance (see dpb.h).
#include "position/dpb.h"

#include "position/relative_bias.h"

namespace extrap {

DynamicPositionBias::DynamicPositionBias(int64_t n_heads, int64_t width, int64_t depth, bool log_distance)
    : log_distance_(log_distance) {
  mlp = register_module("mlp", torch::nn::ModuleList());
  mlp->push_back(torch::nn::Linear(1, width));
  for (int64_t l = 1; l < depth; ++l) mlp->push_back(torch::nn::Linear(width, width));
  mlp->push_back(torch::nn::Linear(width, n_heads));
}

torch::Tensor DynamicPositionBias::bias_of_distances(const torch::Tensor& distances) const {
  auto x = distances.to(torch::kFloat32);
  x = (log_distance_ ? torch::log1p(x) : x).unsqueeze(-1);
  for (std::size_t l = 0; l < mlp->size(); ++l) {
    const auto& layer = mlp->ptr<torch::nn::LinearImpl>(l);
    x = torch::linear(x, layer->weight, layer->bias);
    if (l + 1 < mlp->size()) x = torch::silu(x);
  }
  return x.movedim(-1, 0);
}

torch::Tensor DynamicPositionBias::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end,
                                              int64_t k_begin, int64_t k_end) {
  const BlockRange block{q_begin, q_end, k_begin, k_end};
  // Future keys (d < 0) are masked; clamping them to 0 keeps their (unused) bias finite.
  if (positions.is_arange) {
    return toeplitz_expand(bias_of_distances(toeplitz_distances(block, positions.values.options()).clamp_min(0)),
                           block.rows(), block.keys());
  }
  // Explicit positions: the MLP runs once per distinct distance (random integer positions from a range R
  // have fewer than R), then the values are gathered.
  const auto distances = distance_matrix(positions, block).clamp_min(0);
  const auto [values, inverse, counts] = at::_unique2(distances.reshape({-1}), /*sorted=*/true, /*return_inverse=*/true);
  const auto bias = bias_of_distances(values);
  return batch_major(bias.index_select(1, inverse.reshape({-1})).view(heads_first_sizes(bias.size(0), distances)));
}

namespace {

struct DpbParams {
  int64_t width, depth;
  bool log_distance;
};

DpbParams read_dpb(const nlohmann::json& p, const ModelShape& shape) {
  DpbParams d{param<int64_t>(p, "width"), param<int64_t>(p, "depth"), param<bool>(p, "log_distance")};
  if (d.width < 0) reject_param("width", "must be >= 0, got " + std::to_string(d.width));
  if (d.width == 0) d.width = std::max<int64_t>(1, shape.d_model / 4);
  if (d.depth < 1) reject_param("depth", "must be >= 1, got " + std::to_string(d.depth));
  return d;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(dpb, [] {
  SchemeInfo info;
  info.name = "dpb";
  info.description = "learned MLP bias over the (log) distance, one output per head (x-transformers DynamicPositionBias)";
  info.reference = "lucidrains/x-transformers DynamicPositionBias; log-spaced continuous position bias: Liu et al. 2022 "
                   "(SwinV2)";
  info.params = {{"width", 0, "hidden width of the MLP; 0 means d_model / 4 (x-transformers: dim // 4)"},
                 {"depth", 2, "number of hidden layers (Linear + SiLU), at least 1"},
                 {"log_distance", true, "feed log(d + 1) instead of d (x-transformers' default is false)"}};
  return define_scheme<DynamicPositionBias, kBiasHook>(info, read_dpb, [](const DpbParams& d, const ModelShape& shape) {
    return std::make_shared<DynamicPositionBias>(shape.n_heads, d.width, d.depth, d.log_distance);
  });
}());

}  // namespace extrap
