// ReRoPE / Leaky ReRoPE / InvLeaky ReRoPE as in Su's reference patches (bojone/rerope,
// rerope_patch.py and leaky_rerope_patch.py): two score passes merged by distance, see rerope.h.
#include "position/rerope.h"

namespace extrap {

ReRope::ReRope(const RopeSpec& spec, int64_t window, double leaky_factor)
    : MergedRope(spec), window_(window), leaky_factor_(leaky_factor) {}

std::vector<PassPositions> ReRope::pass_positions(const torch::Tensor& p) const {
  const double w = double(window_);
  if (leaky_factor_ == 0.0) {
    // (R_w q_i) . (R_0 k_j): RoPE's score at distance w for every pair.
    return {{}, {torch::full({1}, w, p.options()), torch::zeros({1}, p.options())}};
  }
  // (R_{(p_i - w)/k + w} q_i) . (R_{p_j/k} k_j): RoPE at w + (p_i - p_j - w)/k.
  return {{}, {(p - w) / leaky_factor_ + w, p / leaky_factor_}};
}

namespace {

struct ReRopeParams {
  RopeSpec spec;
  int64_t window;
  double leaky_factor;
};

ReRopeParams read_rerope(const nlohmann::json& p, const ModelShape& shape) {
  ReRopeParams r{rope_spec_from_params(p, shape), length_param(p, "window", shape.train_length / 4, "train_length / 4"),
                 param<double>(p, "leaky_factor")};
  if (!(r.leaky_factor >= 0.0)) {
    reject_param("leaky_factor", "must be >= 0 (0 = plain ReRoPE), got " + format_number(r.leaky_factor));
  }
  return r;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(rerope, [] {
  SchemeInfo info;
  info.name = "rerope";
  info.description = "RoPE within a window, relative positions beyond it clamped (ReRoPE) or compressed by 1/k (Leaky; "
                     "k < 1: InvLeaky training)";
  info.reference = "Su 2023, kexue.fm/archives/9708 (ReRoPE, Leaky ReRoPE) and 9728 (InvLeaky); code: bojone/rerope";
  info.params = merged_rope_params(
      {{"window", 0, "w: plain RoPE for token distances i - j < w; 0 = train_length / 4"},
       {"leaky_factor", 0.0,
        "k: 0 = ReRoPE (pos = w beyond the window); k > 0 = Leaky, pos = w + (i - j - w)/k; k < 1 = InvLeaky"}});
  info.family = kRotaryFamily;
  return define_scheme<ReRope, kQueryKeyHook | kFarPassHook>(info, read_rerope,
                                                              [](const ReRopeParams& r, const ModelShape&) {
    return std::make_shared<ReRope>(r.spec, r.window, r.leaky_factor);
  });
}());

}  // namespace extrap
