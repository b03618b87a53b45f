#pragma once
// Random q, k, v and far-pass q, k for the attention-kernel tests ([2 batches, 3 heads, length, 8]),
// and the QueryKey that feeds them to a kernel.
#include <torch/torch.h>

#include "model/attention.h"

namespace extrap::test {

struct KernelInputs {
  torch::Tensor q, k, v, q_far, k_far;
};

inline KernelInputs random_kernel_inputs(int64_t length, bool requires_grad) {
  KernelInputs in;
  for (auto* t : {&in.q, &in.k, &in.v, &in.q_far, &in.k_far}) {
    *t = torch::randn({2, 3, length, 8}).set_requires_grad(requires_grad);
  }
  return in;
}

// Leaf copies of the same values, for a second backward to compare gradients with.
inline KernelInputs detached_copy(const KernelInputs& in) {
  const auto copy = [](const torch::Tensor& t) { return t.detach().clone().set_requires_grad(true); };
  return {copy(in.q), copy(in.k), copy(in.v), copy(in.q_far), copy(in.k_far)};
}

// far_from > 0 adds the far pass from that distance on.
inline QueryKey query_key(const KernelInputs& in, int64_t far_from) {
  QueryKey qk{in.q, in.k};
  if (far_from > 0) {
    qk.q_far = in.q_far;
    qk.k_far = in.k_far;
    qk.far_from = far_from;
  }
  return qk;
}

}  // namespace extrap::test
