#include "position/rope_bound.h"

#include <cmath>
#include <deque>
#include <string>
#include <vector>

#include "common/error.h"

namespace extrap {
namespace {

constexpr double kGridRatio = 1.0002;
constexpr double kLargestBase = 1e15;

// Whether sum_t cos(m theta_t) >= 0 for every m < length. Nearby bases tend to fail at the same
// distances, so the few latest failing m are tried first: a failing base then costs O(d), not O(m d).
class BoundCheck {
 public:
  BoundCheck(int64_t length, int64_t head_dim) : length_(length), pairs_(head_dim / 2), theta_(std::size_t(pairs_)) {}

  bool holds(double base) {
    for (std::size_t t = 0; t < theta_.size(); ++t) theta_[t] = std::pow(base, -2.0 * double(t) / double(2 * pairs_));
    for (const int64_t m : recent_) {
      if (sum(m) < 0) return false;
    }
    for (int64_t m = 0; m < length_; ++m) {
      if (sum(m) < 0) {
        recent_.push_front(m);
        if (recent_.size() > 16) recent_.pop_back();
        return false;
      }
    }
    return true;
  }

 private:
  double sum(int64_t m) const {
    double s = 0;
    for (const double theta : theta_) s += std::cos(double(m) * theta);
    return s;
  }

  int64_t length_, pairs_;
  std::vector<double> theta_;
  std::deque<int64_t> recent_;
};

}  // namespace

double rope_base_lower_bound(int64_t length, int64_t head_dim) {
  if (length < 1) throw UserError("--rope-bound " + std::to_string(length) + ": expected a length >= 1");
  if (head_dim < 2 || head_dim % 2 != 0) {
    throw UserError("--head-dim " + std::to_string(head_dim) + ": expected an even head dimension >= 2");
  }
  BoundCheck check(length, head_dim);
  for (double base = 2.0; base < kLargestBase; base *= kGridRatio) {
    if (check.holds(base)) return base;
  }
  throw UserError("--rope-bound " + std::to_string(length) + " --head-dim " + std::to_string(head_dim) +
                  ": no base below 1e15 satisfies the bound (the head is too small for this length)");
}

}  // namespace extrap
