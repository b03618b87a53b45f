// xPos, following microsoft/torchscale (torchscale/component/xpos_relative_position.py): per pair
// zeta_t = (2t + 0.4 d)/(1.4 d); positions centred at c = ceil(T/2) (torchscale's
// min_pos = -(length + offset) // 2 = -ceil(T/2) in Python), power = (n - c)/scale_base; queries
// scaled by zeta^power ("upscale") and keys by zeta^-power ("downscale"). Rotation uses the
// rotate-half pairing of rope.cpp (torchscale rotates interleaved pairs; the two are the same up to
// a fixed permutation of the head dimensions).
#include "position/xpos.h"

#include <cmath>

namespace extrap {

torch::Tensor xpos_zeta(int64_t head_dim) {
  auto t = torch::arange(0, head_dim / 2, torch::kFloat64);
  return (2.0 * t / double(head_dim) + 0.4) / 1.4;
}

int64_t xpos_max_length(double scale_base) {
  // zeta_0 = 0.4/1.4 is the smallest; a window of T positions reaches |power| = ceil(T/2)/scale_base.
  return 2 * int64_t(std::floor(kXposMaxLogScale * scale_base / std::log(1.4 / 0.4)));
}

XPos::XPos(int64_t head_dim, double base, double scale_base)
    : head_dim_(head_dim),
      scale_base_(scale_base),
      inv_freq_(rope_inverse_frequencies(head_dim, base, torch::TensorOptions())),
      log_zeta_(xpos_zeta(head_dim).log()) {}

std::vector<torch::Tensor> XPos::tables(const Positions& positions) const {
  const auto p = positions.values.to(torch::kFloat64);  // [T], or [B, T] per row
  const int64_t length = p.size(-1);
  double centre = std::ceil(double(length) / 2.0);  // 0..T-1: torchscale's centre
  double lo = 0.0, hi = double(length - 1);
  if (!positions.is_arange && length > 0) {
    lo = p.min().item<double>();
    hi = p.max().item<double>();
    centre = std::ceil((lo + hi + 1.0) / 2.0);
  }
  const double max_power = std::max(centre - lo, hi - centre) / scale_base_;
  if (max_power * std::log(1.4 / 0.4) > kXposMaxLogScale) {
    throw UserError("xpos: positions " + format_number(lo) + ".." + format_number(hi) + " need decay factors up to e^" +
                    format_number(max_power * std::log(1.4 / 0.4)) +
                    ", beyond float32's range (at most " + std::to_string(xpos_max_length(scale_base_)) +
                    " positions with position.scale_base = " + format_number(scale_base_) + ")");
  }
  const auto options = p.options();
  // Per row, [B, 1, T, ...]: the tables broadcast over the heads.
  const auto rows = positions.per_row() ? p.unsqueeze(1) : p;
  const auto power = ((rows - centre) / scale_base_).unsqueeze(-1);      // [..., T, 1]
  const auto log_scale = power * log_zeta_.to(options.device());        // [..., T, d/2]: ln zeta^power
  const auto angles = rows.unsqueeze(-1) * inv_freq_.to(options.device());
  const auto cos = angles.cos(), sin = angles.sin();
  const auto up = log_scale.exp(), down = (-log_scale).exp();
  const auto table = [](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::cat({a, b}, -1).to(torch::kFloat32);
  };
  return {table(cos * up, cos * up), table(-sin * up, sin * up), table(cos * down, cos * down),
          table(-sin * down, sin * down)};
}

void XPos::transform_qk(QueryKey& qk, const Positions& positions) {
  std::vector<torch::Tensor> t;
  if (positions.is_arange && !cache_.empty() && cache_[0].size(0) == positions.size() &&
      cache_[0].device() == positions.values.device()) {
    t = cache_;
  } else {
    t = tables(positions);
    if (positions.is_arange) cache_ = t;
  }
  qk.q = rope_rotate(qk.q, t[0], t[1]);
  qk.k = rope_rotate(qk.k, t[2], t[3]);
}

namespace {

struct XPosParams {
  double base, scale_base;
};

XPosParams read_xpos(const nlohmann::json& p, const ModelShape& shape) {
  const XPosParams x{read_base(p), param<double>(p, "scale_base")};
  if (!(x.scale_base > 0.0)) reject_param("scale_base", "must be > 0, got " + format_number(x.scale_base));
  if (xpos_max_length(x.scale_base) < shape.train_length) {
    reject_param("scale_base", format_number(x.scale_base) + " lets the decay factors cover only " +
                                   std::to_string(xpos_max_length(x.scale_base)) +
                                   " positions in float32, fewer than data.train_length = " +
                                   std::to_string(shape.train_length));
  }
  if (shape.head_dim() % 2 != 0) {
    throw UserError("model.d_model / model.n_heads = " + std::to_string(shape.head_dim()) +
                    " is odd; xpos rotates pairs and needs an even head dimension");
  }
  return x;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(xpos, [] {
  SchemeInfo info;
  info.name = "xpos";
  info.description = "rotary embedding with an exponential decay zeta_t^((i - j)/scale_base) of each pair's score";
  info.reference = "Sun et al. 2022, A Length-Extrapolatable Transformer (xPos); code: microsoft/torchscale";
  info.params = {rotary_params()[0],
                 {"scale_base", 512.0, "decay length: pair t's score is scaled by zeta_t^((i - j)/scale_base)"}};
  info.family = kRotaryFamily;
  info.max_length = [](const nlohmann::json& p, const ModelShape&) {
    return xpos_max_length(param<double>(p, "scale_base"));
  };
  return define_scheme<XPos, kQueryKeyHook>(info, read_xpos, [](const XPosParams& x, const ModelShape& shape) {
    return std::make_shared<XPos>(shape.head_dim(), x.base, x.scale_base);
  });
}());

}  // namespace extrap
