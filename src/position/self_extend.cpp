// Self-Extend (Jin et al., ICML 2024, "LLM Maybe LongLM"; code: datamllab/LongLM,
// self_extend_patch/Llama.py): training-free, two passes merged by token distance. Neighbour keys
// (i - j < W) are scored with plain RoPE; farther ones with grouped positions, queries at
// floor(p_i / G) + W - floor(W / G) and keys at floor(p_j / G), so the grouped distance continues
// from W at the window's edge. Relative positions then stay below L_train up to about
// (L_train - W) G + W tokens; group_size 0 picks the smallest G for which they do at the
// evaluated length.
#include <cmath>

#include "position/merged_rope.h"

namespace extrap {
namespace {

class SelfExtend : public MergedRope {
 public:
  SelfExtend(const RopeSpec& spec, int64_t group, int64_t window) : MergedRope(spec), group_(group), window_(window) {}
  std::vector<PassPositions> pass_positions(const torch::Tensor& p) const override {
    const double g = double(group_), shift = double(window_ - window_ / group_);
    const auto grouped = torch::floor(p / g);
    return {{}, {grouped + shift, grouped}};
  }
  PassRule rule() const override { return {window_, 0}; }

 private:
  int64_t group_, window_;
};

struct SelfExtendParams {
  RopeSpec spec;
  int64_t group, window;
};

// The largest grouped distance at `length` tokens: query length - 1 against key 0.
int64_t largest_grouped_distance(int64_t length, int64_t group, int64_t window) {
  return (length - 1) / group + window - window / group;
}

SelfExtendParams read_self_extend(const nlohmann::json& p, const ModelShape& shape) {
  SelfExtendParams r{rope_spec_from_params(p, shape), param<int64_t>(p, "group_size"),
                     length_param(p, "window", shape.train_length / 4, "train_length / 4")};
  if (r.group < 0) {
    reject_param("group_size", "must be >= 1 (1 is plain RoPE; 0 = fit the evaluated length), got " +
                                   std::to_string(r.group));
  }
  if (r.window >= shape.train_length) {
    reject_param("window", std::to_string(r.window) + " does not fit the training length " +
                               std::to_string(shape.train_length) + " (the neighbour window must be shorter)");
  }
  if (r.group == 0) {  // the smallest G that keeps every distance below L_train
    r.group = 1;
    while (largest_grouped_distance(shape.context(), r.group, r.window) >= shape.train_length) ++r.group;
  }
  return r;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(self_extend, [] {
  SchemeInfo info;
  info.name = "self_extend";
  info.description = "RoPE within a neighbour window W, grouped positions floor(p/G) beyond it (training-free)";
  info.reference = "Jin et al. 2024 (ICML), LLM Maybe LongLM: Self-Extend; code: datamllab/LongLM";
  info.params = merged_rope_params(
      {{"group_size", 0,
        "G: keys beyond the window share a position per G tokens (LongLM's code: 8); 0 = the smallest G that keeps "
        "distances below train_length at the evaluated length"},
       {"window", 0, "W: plain RoPE for token distances i - j < W; 0 = train_length / 4 (LongLM: 1024 at 4096)"}});
  info.family = kRotaryFamily;
  info.length_use = [](const nlohmann::json& p) {
    return param<int64_t>(p, "group_size") == 0 ? LengthUse::kPerLength : LengthUse::kNone;
  };
  return define_scheme<SelfExtend, kQueryKeyHook | kFarPassHook>(info, read_self_extend,
                                                                  [](const SelfExtendParams& r, const ModelShape&) {
    return std::make_shared<SelfExtend>(r.spec, r.group, r.window);
  });
}());

}  // namespace extrap
