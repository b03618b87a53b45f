// p-RoPE (Barbero et al., ICLR 2025, "Round and round we go! What makes Rotary Positional Encodings
// useful?"): keep the highest-frequency fraction p of RoPE's own spectrum, theta_t = b^(-2t/d) for
// t < floor(p d/2), and set the rest to 0: those pairs never turn, so every head keeps channels
// that carry content without position. Unlike partial rotary (rotary_dims), whose spectrum is
// re-spread over the rotated dimensions (b^(-2t/r)), the kept frequencies are the original ones.
// A spectrum only: the frequency scalings (PI, NTK, YaRN, ...) apply to it unchanged, and leave
// the zero frequencies at zero.
#include <cmath>

#include "position/rope.h"

namespace extrap {
namespace {

// Pairs t < floor(p * pairs) keep their frequency (the epsilon keeps p = 0.75 of 32 pairs at 24).
int64_t kept_pairs(double p, int64_t pairs) { return int64_t(std::floor(p * double(pairs) + 1e-9)); }

RotarySpectrum read_p_rope(const nlohmann::json& params, const ModelShape&) {
  const double p = param<double>(params, "p");
  if (!(p > 0.0 && p <= 1.0)) {
    reject_param("p", "must be in (0, 1] (the fraction of RoPE's frequencies kept; 1 is RoPE), got " + format_number(p));
  }
  return [p](int64_t dims, double base) {
    auto theta = plain_spectrum(dims, base);
    theta.slice(0, kept_pairs(p, dims / 2)).zero_();
    return theta;
  };
}

}  // namespace

EXTRAP_REGISTER_SCHEME(p_rope, rotary_scheme_info(
    [] {
      SchemeInfo info;
      info.name = "p_rope";
      info.description = "RoPE keeping only the highest-frequency fraction p of its spectrum; the rest never rotate";
      info.reference = "Barbero et al. 2025 (ICLR), Round and round we go! What makes RoPE useful?";
      info.params = {{"p", 0.75, "fraction of the frequencies kept, the highest (t < floor(p d/2)); 1 = RoPE"}};
      return info;
    }(),
    read_p_rope));

}  // namespace extrap
