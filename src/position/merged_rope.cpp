#include "position/merged_rope.h"

namespace extrap {

MergedRope::MergedRope(const RopeSpec& spec) : rope_(spec, 0) {}

void MergedRope::transform_qk(QueryKey& qk, const Positions& positions) {
  const auto q = qk.q, k = qk.k;
  const auto p = positions.values.to(torch::kFloat64);
  const auto rotated = [&](const torch::Tensor& x, const torch::Tensor& at) {
    if (!at.defined()) {
      auto [cos, sin] = rope_.cos_sin(positions);  // cached for 0..T-1
      return rope_.rotate(x, cos, sin);
    }
    auto [cos, sin] = rope_.cos_sin_at(at);
    return rope_.rotate(x, cos, sin);
  };
  const auto maps = pass_positions(p);
  torch::Tensor last_key_positions, last_key;  // passes often share their keys: rotate them once
  for (std::size_t pass = 0; pass < maps.size(); ++pass) {
    const auto& map = maps[pass];
    const bool same_keys = pass > 0 && map.key.defined() == last_key_positions.defined() &&
                           (!map.key.defined() || map.key.is_same(last_key_positions));
    ScorePair pair{rotated(q, map.query), same_keys ? last_key : rotated(k, map.key)};
    last_key_positions = map.key;
    last_key = pair.k;
    if (pass == 0) {
      qk.q = pair.q;
      qk.k = pair.k;
    } else {
      qk.far_passes.push_back(std::move(pair));
    }
  }
  qk.rule = rule();
}

std::vector<SchemeParam> merged_rope_params(std::vector<SchemeParam> own) {
  std::vector<SchemeParam> params = rotary_params();
  for (auto& p : own) {
    p.inference = true;
    params.push_back(std::move(p));
  }
  return params;
}

int64_t length_param(const nlohmann::json& params, const char* key, int64_t fallback, const char* fallback_text) {
  const auto value = param<int64_t>(params, key);
  if (value < 0) reject_param(key, "must be >= 0 (0 = " + std::string(fallback_text) + "), got " + std::to_string(value));
  return value > 0 ? value : std::max<int64_t>(1, fallback);
}

}  // namespace extrap
