// ALiBi (Press et al.): no position embedding; each head h adds -slope_h * (i - j) to its scores
// (returned up to a per-row constant, see score_bias below).
// Slopes are the geometric sequence 2^(-8/n), 2^(-16/n), ... for n heads when n is a power of two;
// otherwise the n' = 2^floor(log2 n) slopes followed by every other slope of 2n' heads (reference code).
#include "position/alibi.h"

#include <cmath>

namespace extrap {

namespace {
std::vector<double> power_of_two_slopes(int64_t n) {
  const double start = std::pow(2.0, -8.0 / double(n));
  std::vector<double> slopes;
  for (int64_t i = 0; i < n; ++i) slopes.push_back(std::pow(start, double(i + 1)));
  return slopes;
}
}  // namespace

std::vector<double> alibi_slopes(int64_t n_heads) {
  const int64_t lower = int64_t(1) << int64_t(std::floor(std::log2(double(n_heads))));
  std::vector<double> slopes = power_of_two_slopes(lower);
  const std::vector<double> doubled = power_of_two_slopes(2 * lower);
  for (int64_t i = 0; int64_t(slopes.size()) < n_heads; i += 2) slopes.push_back(doubled[i]);
  return slopes;
}

Alibi::Alibi(int64_t n_heads) {
  // A buffer, not a parameter: saved with the model but never trained.
  slopes_ = register_buffer("slopes", torch::tensor(alibi_slopes(n_heads), torch::kFloat64).to(torch::kFloat32));
}

torch::Tensor Alibi::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                                int64_t k_end) {
  // -slope_h * (i - j) = -slope_h * (i - i0) + slope_h * (j - i0) with i0 = q_begin. The first term is
  // constant along each query row and cancels in softmax, so one [H, 1, keys] row serves the whole
  // block. Measuring from i0 keeps the values small (hence exact) for the nearby keys that matter.
  // Per-row positions give each row its own: [B, H, 1, keys].
  const auto& p = positions.values;
  const auto anchor = p.narrow(-1, q_begin, 1);
  auto k = (p.slice(-1, k_begin, k_end) - anchor).to(torch::kFloat32);
  return k.unsqueeze(-2).unsqueeze(-2) * slopes_.view({-1, 1, 1});  // [H, 1, keys]
}

EXTRAP_REGISTER_SCHEME(alibi, [] {
  SchemeInfo info;
  info.name = "alibi";
  info.description = "linear distance penalty -slope_h * (i - j) per head, no position embedding";
  info.reference = "Press et al. 2022, Train Short, Test Long (ALiBi)";
  return define_scheme<Alibi, kBiasHook>(info, read_no_params, [](NoParams, const ModelShape& shape) {
    return std::make_shared<Alibi>(shape.n_heads);
  });
}());

}  // namespace extrap
