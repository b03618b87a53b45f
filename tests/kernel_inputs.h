#pragma once
// Random q, k, v and far-pass q, k for the attention-kernel tests ([2 batches, 3 heads, length, 8]),
// and the QueryKey that feeds them to a kernel.
#include <functional>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/attention.h"
#include "model/fused_attention.h"
#include "model/tiled_attention.h"

namespace extrap::test {

struct KernelInputs {
  torch::Tensor q, k, v;
  std::vector<ScorePair> far;  // enough for any rule (kMaxPasses - 1 pairs)
  std::vector<torch::Tensor*> tensors() {
    std::vector<torch::Tensor*> all{&q, &k, &v};
    for (auto& pair : far) all.insert(all.end(), {&pair.q, &pair.k});
    return all;
  }
};

inline KernelInputs random_kernel_inputs(int64_t length, bool requires_grad) {
  KernelInputs in;
  in.far.resize(kMaxPasses - 1);
  for (auto* t : in.tensors()) *t = torch::randn({2, 3, length, 8}).set_requires_grad(requires_grad);
  return in;
}

// Leaf copies of the same values, for a second backward to compare gradients with.
inline KernelInputs detached_copy(KernelInputs in) {
  for (auto* t : in.tensors()) *t = t->detach().clone().set_requires_grad(true);
  return in;
}

// The pairs the rule uses: pass 0 is (q, k), pass p the far pair p - 1.
inline QueryKey query_key(const KernelInputs& in, const PassRule& rule) {
  QueryKey qk{in.q, in.k};
  for (int p = 1; p < rule.passes(); ++p) qk.far_passes.push_back(in.far[p - 1]);
  qk.rule = rule;
  return qk;
}

// The three CPU kernels by name, the blockwise reference in training mode (no dropout).
using KernelFunction = std::function<torch::Tensor(const QueryKey&, const torch::Tensor&, const AttentionCall&)>;
inline const std::vector<std::pair<const char*, KernelFunction>>& every_kernel() {
  static const std::vector<std::pair<const char*, KernelFunction>> kernels{
      {"blockwise", [](const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call) {
         return blockwise_causal_attention(qk, v, call, 0.0, true);
       }},
      {"fused", fused_causal_attention},
      {"tiled", tiled_causal_attention}};
  return kernels;
}

// far_from > 0 adds the far pass from that distance on.
inline QueryKey query_key(const KernelInputs& in, int64_t far_from) { return query_key(in, PassRule{far_from, 0}); }

}  // namespace extrap::test
