#include "position/pass_rule.h"

namespace extrap {

int64_t PassRule::boundary(int64_t i, int p) const {
  if (chunk > 0) return (i / chunk - (p - 1)) * chunk;
  return i - far_from + 1;
}

int PassRule::pass(int64_t i, int64_t j) const {
  int p = 0;
  while (p + 1 < passes() && j < boundary(i, p + 1)) ++p;
  return p;
}

}  // namespace extrap
