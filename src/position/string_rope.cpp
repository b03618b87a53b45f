// STRING, shifted rotary position embedding (An et al., ICLR 2025, "Why Does the Effective Context
// Length of LLMs Fall Short?"): training-free, two passes merged by token distance. Distances
// r < S keep their RoPE position; from S on they are shifted to r - S + W, so the large distances a
// model saw too rarely in training are overwritten by well-trained ones, and the local window W
// keeps its exact positions. The shifted pass rotates queries to p_i - S + W and keys as RoPE.
#include "position/merged_rope.h"

namespace extrap {
namespace {

class StringRope : public MergedRope {
 public:
  StringRope(const RopeSpec& spec, int64_t shift, int64_t window) : MergedRope(spec), shift_(shift), window_(window) {}
  std::vector<PassPositions> pass_positions(const torch::Tensor& p) const override {
    return {{}, {p - double(shift_ - window_), {}}};
  }
  PassRule rule() const override { return {shift_, 0}; }

 private:
  int64_t shift_, window_;
};

struct StringParams {
  RopeSpec spec;
  int64_t shift, window;
};

StringParams read_string(const nlohmann::json& p, const ModelShape& shape) {
  const int64_t shift = length_param(p, "shift", shape.train_length / 3, "train_length / 3");
  StringParams r{rope_spec_from_params(p, shape), shift, length_param(p, "window", shape.train_length / 16, "train_length / 16")};
  if (r.shift >= shape.train_length) {
    reject_param("shift", std::to_string(r.shift) + " does not fit the training length " +
                              std::to_string(shape.train_length) + " (STRING's paper uses train_length / 3)");
  }
  if (r.window >= r.shift) {
    reject_param("window", std::to_string(r.window) + " must be below the shift " + std::to_string(r.shift) +
                               " (the shifted distances restart at the window)");
  }
  return r;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(string, [] {
  SchemeInfo info;
  info.name = "string";
  info.description = "RoPE with distances r >= S shifted to r - S + W, reusing well-trained positions (training-free)";
  info.reference = "An et al. 2025 (ICLR), Why Does the Effective Context Length of LLMs Fall Short? (STRING)";
  info.params = merged_rope_params(
      {{"shift", 0, "S: distances from S on are shifted down by S - W; 0 = train_length / 3 (the paper's)"},
       {"window", 0, "W: the local window kept exact, W < S; 0 = train_length / 16 (the paper: 128)"}});
  info.family = kRotaryFamily;
  return define_scheme<StringRope, kQueryKeyHook | kFarPassHook>(info, read_string,
                                                                  [](const StringParams& r, const ModelShape&) {
    return std::make_shared<StringRope>(r.spec, r.shift, r.window);
  });
}());

}  // namespace extrap
