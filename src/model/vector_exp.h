#pragma once
// e^x for float that the compiler vectorises in loops at -O3 without -ffast-math. glibc's vector exp
// (libmvec) is only used under -ffast-math, which also lets the compiler assume there are no NaNs or
// infinities; a diverging run has both and must keep defined results. LibTorch's
// at::vec::Vectorized<float>::exp needs SLEEF, whose header Debian's libtorch-dev lacks (its generic
// fallback calls std::exp one lane at a time).
#include <cstdint>
#include <cstring>

namespace extrap {

// Cephes' expf: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2, e^r by a degree-7
// polynomial, times 2^n built in the exponent bits.
//  * x in [-87.33, 88.37] (e^x a normal float): relative error below 2e-7, under 2 float ulps
//    (tests/test_kernels.cpp).
//  * x below: 0 (e^x is subnormal there, under 1.2e-38). x above: +inf (e^x overflows from 88.72).
//  * NaN: NaN.
// No branches, for the compiler to vectorise loops over it: out-of-range inputs are not clamped but
// computed anyway and replaced at the end with bit masks. (With a ?: the compiler would move the
// arithmetic into one branch, and without -fno-trapping-math it then keeps the branch.)
inline float vector_exp(float x) {
  constexpr float kMin = -87.3365447f;  // ln 2^-126: 2^n stays a normal float
  constexpr float kMax = 88.3762626f;   // 2^n stays below 2^128
  // Adding 1.5 * 2^23 rounds to an integer (float spacing is 1 there) and leaves n in the low bits.
  constexpr float kShift = 12582912.0f;
  constexpr uint32_t kShiftBits = 0x4B400000u;  // the bits of kShift
  const float shifted = x * 1.44269504088896341f + kShift;
  const float n = shifted - kShift;
  // ln 2 split in two (Cephes): n * 0.693359375 is exact, so r keeps full precision.
  float r = x - n * 0.693359375f;
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
  const float in_range = e_r * scale;  // a NaN stays NaN: NaN times any scale is NaN
  // Below kMin: all bits cleared (+0). Above kMax: the bits of +inf. Comparisons with NaN are false.
  const uint32_t below = 0u - uint32_t(x < kMin), above = 0u - uint32_t(x > kMax);
  uint32_t result_bits;
  std::memcpy(&result_bits, &in_range, sizeof result_bits);
  result_bits = (result_bits & ~(below | above)) | (above & 0x7F800000u);
  float result;
  std::memcpy(&result, &result_bits, sizeof result);
  return result;
}

}  // namespace extrap
