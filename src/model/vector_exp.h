#pragma once
// e^x for float that the compiler vectorises in loops at -O3 without -ffast-math. glibc's vector exp
// (libmvec) is only used under -ffast-math, which also lets the compiler assume there are no NaNs or
// infinities; a diverging run has both and must keep defined results. LibTorch's
// at::vec::Vectorized<float>::exp needs SLEEF, whose header Debian's libtorch-dev lacks (its generic
// fallback calls std::exp one lane at a time).
#include <cstdint>
#include <cstring>
#include <limits>

namespace extrap {

// Cephes' expf: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2, e^r by a degree-7
// polynomial, times 2^n built in the exponent bits. Selects only, no branches, so loops vectorise.
//  * x in [-87.33, 88.37] (e^x a normal float): relative error below 3e-7 (tests/test_kernels.cpp).
//  * x below: 0 (e^x is subnormal there, under 1.2e-38). x above: +inf (e^x overflows from 88.72).
//  * NaN: NaN.
inline float vector_exp(float x) {
  constexpr float kMin = -87.3365447f;  // ln 2^-126: 2^n stays a normal float
  constexpr float kMax = 88.3762626f;   // 2^n stays below 2^128
  const float clamped = x < kMin ? kMin : (x > kMax ? kMax : x);  // a NaN passes through
  // Adding 1.5 * 2^23 rounds to an integer (float spacing is 1 there) and leaves n in the low bits.
  constexpr float kShift = 12582912.0f;
  constexpr uint32_t kShiftBits = 0x4B400000u;  // the bits of kShift
  const float shifted = clamped * 1.44269504088896341f + kShift;
  const float n = shifted - kShift;
  // ln 2 split in two (Cephes): n * 0.693359375 is exact, so r keeps full precision.
  float r = clamped - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  uint32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  const uint32_t scale_bits = (bits - kShiftBits + 127u) << 23;  // biased exponent n + 127
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const float result = e_r * scale;  // NaN in, NaN out: whatever the scale bits, NaN * scale is NaN
  return x < kMin ? 0.0f : (x > kMax ? std::numeric_limits<float>::infinity() : result);
}

}  // namespace extrap
