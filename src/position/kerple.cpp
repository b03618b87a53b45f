// KERPLE (Chi et al. 2022, "KERPLE: Kernelized Relative Positional Embedding for Length
// Extrapolation"): conditionally positive definite kernels of the distance as a learnable bias.
#include "position/kerple.h"

#include "position/relative_bias.h"

namespace extrap {

Kerple::Kerple(int64_t n_heads, Variant variant) : variant_(variant) {
  // The reference draws its exponent/log-scale parameter bias_p = 2 * U(0, 1) first, then bias_a = U(0, 1).
  auto p = torch::rand({n_heads}) * 2.0;
  auto a = torch::rand({n_heads});
  if (variant == Variant::kLog) {  // -bias_p * log(1 + bias_a * d)
    r1_ = register_parameter("r1", p);
    r2_ = register_parameter("r2", a);
  } else {  // -bias_a * d^bias_p
    r1_ = register_parameter("r1", a);
    r2_ = register_parameter("r2", p);
  }
}

void Kerple::project() {
  // variable_data() shares the storage without the autograd version counter: the projection is a
  // change of the stored value between optimizer steps, not an operation of the graph.
  torch::NoGradGuard no_grad;
  r1_.variable_data().clamp_min_(kEps);
  if (variant_ == Variant::kLog) {
    r2_.variable_data().clamp_min_(kEps);
  } else {
    r2_.variable_data().clamp_(kEps, 2.0);
  }
}

torch::Tensor Kerple::kernel(const torch::Tensor& distances) {
  std::vector<int64_t> shape{r1_.size(0)};
  for (int64_t i = 0; i < distances.dim(); ++i) shape.push_back(1);
  const auto r1 = r1_.view(shape), r2 = r2_.view(shape);
  const auto d = distances.to(torch::kFloat32).unsqueeze(0);
  if (variant_ == Variant::kLog) return -r1 * torch::log1p(r2 * d);
  // d^r2 as exp(r2 log d) for d > 0 and 0 at d = 0, so that d/dr2 (= d^r2 log d) is 0 there, not NaN.
  const auto positive = d > 0;
  const auto power = torch::exp(r2 * torch::log(torch::where(positive, d, torch::ones_like(d))));
  return -r1 * torch::where(positive, power, torch::zeros_like(power));
}

torch::Tensor Kerple::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                                 int64_t k_end) {
  project();
  const BlockRange block{q_begin, q_end, k_begin, k_end};
  // Future keys (d < 0) are masked; clamping them to 0 keeps their (unused) bias finite.
  if (positions.is_arange) {
    return toeplitz_expand(kernel(toeplitz_distances(block, positions.values.options()).clamp_min(0)), block.rows(),
                           block.keys());
  }
  return batch_major(kernel(distance_matrix(positions, block).clamp_min(0)));
}

EXTRAP_REGISTER_SCHEME(kerple, [] {
  SchemeInfo info;
  info.name = "kerple";
  info.description = "learnable per-head kernel bias: -r1*log(1 + r2*(i-j)) (log) or -r1*(i-j)^r2 (power)";
  info.reference = "Chi et al. 2022, KERPLE: Kernelized Relative Positional Embedding for Length Extrapolation";
  info.params = {{"variant", "log", "log: -r1*log(1 + r2*d), r1, r2 > 0; power: -r1*d^r2, r1 > 0, 0 < r2 <= 2"}};
  const auto read = [](const nlohmann::json& p, const ModelShape&) {
    static constexpr EnumName<Kerple::Variant> kVariants[] = {{Kerple::Variant::kLog, "log"},
                                                              {Kerple::Variant::kPower, "power"}};
    return parse_enum(kVariants, param<std::string>(p, "variant"), "position.variant");
  };
  return define_scheme<Kerple, kBiasHook>(info, read, [](Kerple::Variant variant, const ModelShape& shape) {
    return std::make_shared<Kerple>(shape.n_heads, variant);
  });
}());

}  // namespace extrap
