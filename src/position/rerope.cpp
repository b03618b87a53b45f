// ReRoPE / Leaky ReRoPE / InvLeaky ReRoPE as in Su's reference patches (bojone/rerope,
// rerope_patch.py and leaky_rerope_patch.py): two score passes merged by distance, see rerope.h.
#include "position/rerope.h"

namespace extrap {

ReRope::ReRope(const RopeSpec& spec, int64_t window, double leaky_factor)
    : rope_(spec, 0), window_(window), leaky_factor_(leaky_factor) {}

void ReRope::transform_qk(QueryKey& qk, const Positions& positions) {
  const auto q = qk.q, k = qk.k;
  auto [cos, sin] = rope_.cos_sin(positions);  // near pass: plain RoPE at the positions
  qk.q = rope_.rotate(q, cos, sin);
  qk.k = rope_.rotate(k, cos, sin);
  const double w = double(window_);
  const auto p = positions.values.to(torch::kFloat64);
  if (leaky_factor_ == 0.0) {
    // (R_w q_i) . k_j = q_i . R_{-w} k_j: RoPE's score at distance w for every pair.
    auto [cos_w, sin_w] = rope_.cos_sin_at(torch::full({1}, w, p.options()));  // [1, dims], broadcast over T
    qk.q_far = rope_.rotate(q, cos_w, sin_w);
    qk.k_far = k;
  } else {
    // (R_{(p_i - w)/k + w} q_i) . (R_{p_j/k} k_j): RoPE at w + (p_i - p_j - w)/k.
    auto [cos_q, sin_q] = rope_.cos_sin_at((p - w) / leaky_factor_ + w);
    auto [cos_k, sin_k] = rope_.cos_sin_at(p / leaky_factor_);
    qk.q_far = rope_.rotate(q, cos_q, sin_q);
    qk.k_far = rope_.rotate(k, cos_k, sin_k);
  }
  qk.far_from = window_;
}

namespace {

struct ReRopeParams {
  RopeSpec spec;
  int64_t window;
  double leaky_factor;
};

ReRopeParams read_rerope(const nlohmann::json& p, const ModelShape& shape) {
  ReRopeParams r{rope_spec_from_params(p, shape), param<int64_t>(p, "window"), param<double>(p, "leaky_factor")};
  if (r.window < 0) reject_param("window", "must be >= 0 (0 = train_length / 4), got " + std::to_string(r.window));
  if (r.window == 0) r.window = std::max<int64_t>(1, shape.train_length / 4);
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
  info.params = rotary_params();
  info.params.push_back({"window", 0, "w: plain RoPE for token distances i - j < w; 0 = train_length / 4", true});
  info.params.push_back({"leaky_factor", 0.0,
                         "k: 0 = ReRoPE (pos = w beyond the window); k > 0 = Leaky, pos = w + (i - j - w)/k; k < 1 = "
                         "InvLeaky",
                         true});
  info.family = kRotaryFamily;
  return define_scheme<ReRope, kQueryKeyHook | kFarPassHook>(info, read_rerope,
                                                              [](const ReRopeParams& r, const ModelShape&) {
    return std::make_shared<ReRope>(r.spec, r.window, r.leaky_factor);
  });
}());

}  // namespace extrap
