// FIRE: a learned function of the progressively interpolated log distance (see fire.h).
#include "position/fire.h"

#include <cmath>

#include "position/relative_bias.h"

namespace extrap {

Fire::Fire(int64_t n_heads, int64_t mlp_width, double initial_c, double initial_L) : n_heads_(n_heads) {
  mlp_in = register_module("mlp_in", torch::nn::Linear(1, mlp_width));
  mlp_out = register_module("mlp_out", torch::nn::Linear(mlp_width, n_heads));
  c = register_parameter("c", torch::full({1}, initial_c));
  L_multiplier = register_parameter("L_multiplier", torch::ones({1}));
  init_L = register_buffer("init_L", torch::full({1}, initial_L));
}

torch::Tensor Fire::mlp(const torch::Tensor& x) const {
  auto y = torch::linear(torch::relu(torch::linear(x.unsqueeze(-1), mlp_in->weight, mlp_in->bias)), mlp_out->weight,
                         mlp_out->bias);  // [..., H]
  return y.movedim(-1, 0);
}

torch::Tensor Fire::threshold() const { return (L_multiplier * init_L).abs(); }

torch::Tensor Fire::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                               int64_t k_end) {
  const BlockRange block{q_begin, q_end, k_begin, k_end};
  const auto psi = [&](const torch::Tensor& x) { return torch::log((c * x).abs() + 1.0); };
  const auto threshold = this->threshold();
  // Future keys (i - j < 0) are masked; clamping them to 0 keeps their (unused) bias finite.
  if (positions.is_arange && double(q_end - 1) < threshold.item<double>()) {
    // Every row has i < L, so the normalizer is psi(L) for the whole block and the bias depends on
    // i - j only: the MLP runs on the block's rows + keys - 1 distances, then they are expanded.
    const auto d = toeplitz_distances(block, positions.values.options()).clamp_min(0).to(torch::kFloat32);
    return toeplitz_expand(mlp(psi(d) / (psi(threshold) + kEps)), block.rows(), block.keys());
  }
  const auto d = distance_matrix(positions, block).clamp_min(0).to(torch::kFloat32);  // [rows, keys]
  const auto query = positions.values.slice(0, q_begin, q_end).to(torch::kFloat32).unsqueeze(1);
  const auto x = psi(d) / (psi(torch::maximum(query, threshold)) + kEps);
  // The MLP's hidden layer is [rows, keys, width]: rows go through it in chunks of at most 2^22 hidden
  // values (16 MB), so long evaluation windows never hold more.
  const int64_t width = mlp_in->weight.size(0);
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, block.keys() * width));
  if (chunk >= block.rows()) return mlp(x);
  std::vector<torch::Tensor> parts;
  for (int64_t r = 0; r < block.rows(); r += chunk) parts.push_back(mlp(x.slice(0, r, std::min(block.rows(), r + chunk))));
  return torch::cat(parts, 1);
}

EXTRAP_REGISTER_SCHEME(fire, SchemeInfo{
    "fire", "learned MLP bias f(psi(i-j) / psi(max(L, i))), psi(x) = log(|c x| + 1), learnable c and L",
    "Li et al. 2024 (ICLR), Functional Interpolation for Relative Positions Improves Long Context Transformers",
    {{"mlp_width", 32, "hidden width of the MLP f (one hidden layer, ReLU, one output per head)"},
     {"init_c", 0.1, "initial c of psi(x) = log(|c x| + 1)"},
     {"init_L", 512.0, "threshold L's initial value (L = |L_multiplier * init_L|, L_multiplier starts at 1)"}},
    [](const nlohmann::json& p, const ModelShape& shape) {
      const auto width = param<int64_t>(p, "mlp_width");
      const auto init_c = param<double>(p, "init_c");
      const auto init_L = param<double>(p, "init_L");
      if (width < 1) reject_param("mlp_width", "must be >= 1, got " + std::to_string(width));
      if (!(init_c > 0) || !std::isfinite(init_c)) {
        reject_param("init_c", "must be a finite number > 0, got " + nlohmann::json(init_c).dump());
      }
      if (!(init_L >= 0) || !std::isfinite(init_L)) {
        reject_param("init_L", "must be a finite number >= 0, got " + nlohmann::json(init_L).dump());
      }
      return std::make_shared<Fire>(shape.n_heads, width, init_c, init_L);
    },
    kBiasHook});

}  // namespace extrap
