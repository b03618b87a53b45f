// RoPE (Su et al.): rotate each (x_t, x_{t+d/2}) pair of q and k by position * theta_t with
// theta_t = base^(-2t/d) ("rotate-half" pairing, as in GPT-NeoX / LLaMA and the ReRoPE reference
// code), so that q_i . k_j depends only on i - j. Angles are computed in float64 (spec §7.6).
#include "position/rope.h"

namespace extrap {

torch::Tensor rope_inverse_frequencies(int64_t head_dim, double base, const torch::TensorOptions& options) {
  auto t = torch::arange(0, head_dim / 2, options.dtype(torch::kFloat64));
  return torch::pow(torch::tensor(base, options.dtype(torch::kFloat64)), -2.0 * t / double(head_dim));
}

torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin] as x * cos + swap_halves(x) * [-sin, sin]: three
  // elementwise passes instead of the eight of the textbook form, and no narrow/cat copies.
  auto sizes = x.sizes().vec();
  sizes.back() = 2;
  sizes.push_back(x.size(-1) / 2);
  auto swapped = x.reshape(sizes).flip(-2).reshape(x.sizes());
  return torch::addcmul(x * cos, swapped, sin);
}

Rope::Rope(int64_t head_dim, double base) : head_dim_(head_dim), base_(base) {}

std::pair<torch::Tensor, torch::Tensor> Rope::cos_sin(const Positions& positions) {
  const int64_t length = positions.size();
  if (!positions.is_arange) return angles_to_cos_sin(positions.values);
  // Plain 0..T-1 positions: slice a cached table, grown to the longest length seen.
  if (!cos_cache_.defined() || cos_cache_.size(0) < length || cos_cache_.device() != positions.values.device()) {
    std::tie(cos_cache_, sin_cache_) = angles_to_cos_sin(positions.values);
  }
  return {cos_cache_.narrow(0, 0, length), sin_cache_.narrow(0, 0, length)};
}

std::pair<torch::Tensor, torch::Tensor> Rope::angles_to_cos_sin(const torch::Tensor& positions) const {
  auto inv_freq = rope_inverse_frequencies(head_dim_, base_, positions.options());
  auto angles = positions.to(torch::kFloat64).unsqueeze(1) * inv_freq.unsqueeze(0);  // [T, d/2]
  auto cos = angles.cos(), sin = angles.sin();
  return {torch::cat({cos, cos}, 1).to(torch::kFloat32), torch::cat({-sin, sin}, 1).to(torch::kFloat32)};
}

void Rope::transform_qk(QueryKey& qk, const Positions& positions) {
  auto [cos, sin] = cos_sin(positions);
  qk.q = rope_rotate(qk.q, cos, sin);
  qk.k = rope_rotate(qk.k, cos, sin);
}

EXTRAP_REGISTER_SCHEME(rope, SchemeInfo{
    "rope", "rotary position embedding on queries and keys; scores depend only on i - j",
    "Su et al. 2021, RoFormer", {{"base", 10000.0, "rotation base b in theta_t = b^(-2t/d)"}},
    [](const nlohmann::json& p, const ModelShape& shape) {
      const double base = param<double>(p, "base");
      if (!(base > 1.0)) reject_param("base", "must be > 1, got " + std::to_string(base));
      if (shape.head_dim() % 2 != 0) {
        throw UserError("model.d_model / model.n_heads = " + std::to_string(shape.head_dim()) +
                        " is odd; rope rotates pairs and needs an even head dimension");
      }
      return std::make_shared<Rope>(shape.head_dim(), base);
    }, kQueryKeyHook, false, true});

}  // namespace extrap
