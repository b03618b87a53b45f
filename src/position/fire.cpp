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
  const auto d = distance_matrix(positions, block).clamp_min(0).to(torch::kFloat32);  // [(B,) rows, keys]
  const auto query = positions.values.slice(-1, q_begin, q_end).to(torch::kFloat32).unsqueeze(-1);
  const auto x = psi(d) / (psi(torch::maximum(query, threshold)) + kEps);
  // Without gradients (evaluation) f is evaluated as the piecewise-linear function it is: a segment
  // lookup and one multiply-add per entry and head instead of the [rows, keys, width] hidden layer.
  const bool needs_graph = torch::GradMode::is_enabled() && (mlp_in->weight.requires_grad() || c.requires_grad());
  const auto f = [&](const torch::Tensor& part) { return needs_graph ? mlp(part) : mlp_piecewise(part); };
  // Rows go through in chunks of at most 2^22 intermediate values per tensor (16 MB: the hidden layer
  // [rows, keys, width] of the MLP, or the per-head [H, rows, keys] lookups), so long windows never hold more.
  const int64_t per_entry = needs_graph ? mlp_in->weight.size(0) : n_heads_;
  const int64_t per_row = x.numel() / block.rows();  // keys, times B for per-row positions
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, per_row * per_entry));
  if (chunk >= block.rows()) return batch_major(f(x));
  std::vector<torch::Tensor> parts;  // rows are the second-to-last dimension, with or without B
  for (int64_t r = 0; r < block.rows(); r += chunk) parts.push_back(f(x.slice(-2, r, std::min(block.rows(), r + chunk))));
  return batch_major(torch::cat(parts, -2));
}

torch::Tensor Fire::mlp_piecewise(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  // f(x) = b2 + sum_k w2[:, k] relu(w1_k x + b1_k) is linear between the breakpoints -b1_k / w1_k where a
  // hidden unit switches: on segment s, f(x) = A[:, s] x + B[:, s], summing the units active there.
  const auto w1 = mlp_in->weight.reshape({-1}).to(torch::kFloat64), b1 = mlp_in->bias.to(torch::kFloat64);
  const auto w2 = mlp_out->weight.to(torch::kFloat64), b2 = mlp_out->bias.to(torch::kFloat64);
  const auto switching = w1 != 0;
  const auto breakpoints = std::get<0>((-b1.masked_select(switching) / w1.masked_select(switching)).sort());
  const int64_t count = breakpoints.numel();
  // One point inside each of the count + 1 segments decides which units are active there.
  torch::Tensor inside;
  if (count == 0) {
    inside = torch::zeros({1}, w1.options());
  } else {
    const auto first = breakpoints.slice(0, 0, 1) - 1.0, last = breakpoints.slice(0, count - 1) + 1.0;
    const auto middles = (breakpoints.slice(0, 0, count - 1) + breakpoints.slice(0, 1)) / 2;
    inside = torch::cat({first, middles, last});
  }
  const auto active = ((w1.unsqueeze(1) * inside.unsqueeze(0) + b1.unsqueeze(1)) > 0).to(torch::kFloat64);  // [W, S]
  const auto slopes = torch::matmul(w2, w1.unsqueeze(1) * active).to(torch::kFloat32);                      // [H, S]
  const auto offsets = (b2.unsqueeze(1) + torch::matmul(w2, b1.unsqueeze(1) * active)).to(torch::kFloat32);  // [H, S]
  const auto device = x.device();
  // Equal breakpoints leave an empty segment between them; searchsorted never selects it.
  const auto segment = torch::searchsorted(breakpoints.to(torch::kFloat32).to(device), x.reshape({-1}));
  std::vector<int64_t> shape{slopes.size(0)};
  for (const auto size : x.sizes()) shape.push_back(size);
  auto out = offsets.to(device).index_select(1, segment);
  out.addcmul_(slopes.to(device).index_select(1, segment), x.reshape({1, -1}));
  return out.view(shape);
}

namespace {

struct FireParams {
  int64_t width;
  double init_c, init_L;
};

FireParams read_fire(const nlohmann::json& p, const ModelShape&) {
  const FireParams f{param<int64_t>(p, "mlp_width"), param<double>(p, "init_c"), param<double>(p, "init_L")};
  if (f.width < 1) reject_param("mlp_width", "must be >= 1, got " + std::to_string(f.width));
  if (!(f.init_c > 0) || !std::isfinite(f.init_c)) {
    reject_param("init_c", "must be a finite number > 0, got " + format_number(f.init_c));
  }
  if (!(f.init_L >= 0) || !std::isfinite(f.init_L)) {
    reject_param("init_L", "must be a finite number >= 0, got " + format_number(f.init_L));
  }
  return f;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(fire, [] {
  SchemeInfo info;
  info.name = "fire";
  info.description = "learned MLP bias f(psi(i-j) / psi(max(L, i))), psi(x) = log(|c x| + 1), learnable c and L";
  info.reference = "Li et al. 2024 (ICLR), Functional Interpolation for Relative Positions Improves Long Context "
                   "Transformers";
  info.params = {{"mlp_width", 32, "hidden width of the MLP f (one hidden layer, ReLU, one output per head)"},
                 {"init_c", 0.1, "initial c of psi(x) = log(|c x| + 1)"},
                 {"init_L", 512.0, "threshold L's initial value (L = |L_multiplier * init_L|, L_multiplier starts at 1)"}};
  return define_scheme<Fire, kBiasHook>(info, read_fire, [](const FireParams& f, const ModelShape& shape) {
    return std::make_shared<Fire>(shape.n_heads, f.width, f.init_c, f.init_L);
  });
}());

}  // namespace extrap
