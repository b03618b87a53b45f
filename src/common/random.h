#pragma once
// splitmix64: a tiny generator with a fixed definition, so a seed gives the same numbers on every
// platform (std::shuffle and the std distributions are implementation-defined). Counter-based use
// (hashing seed, step and row) makes every draw reproducible on resume without stored state.
#include <cstdint>

namespace extrap {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  // The reference sequence: advance the state by the golden gamma and mix the new state.
  uint64_t next() {
    const uint64_t x = state_;
    state_ += 0x9e3779b97f4a7c15ULL;
    return splitmix64(x);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace extrap
