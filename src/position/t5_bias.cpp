// T5 relative position bias (Raffel et al. 2020), causal form: a learnable per-head scalar for each
// of num_buckets distance buckets. Every distance >= max_distance shares the last bucket, so the
// bias is constant beyond max_distance and the scheme runs at any length.
#include "position/t5_bias.h"

#include <cmath>

#include "position/relative_bias.h"

namespace extrap {

int64_t t5_causal_bucket(int64_t distance, int64_t num_buckets, int64_t max_distance) {
  const int64_t n = std::max<int64_t>(distance, 0);
  const int64_t max_exact = num_buckets / 2;
  if (n < max_exact) return n;
  const double scaled = std::log(double(n) / double(max_exact)) / std::log(double(max_distance) / double(max_exact)) *
                        double(num_buckets - max_exact);
  // The guard keeps a distance whose exact value is an integer (such as n = max_distance) from falling
  // one bucket lower through rounding.
  return std::min(max_exact + int64_t(std::floor(scaled + 1e-9)), num_buckets - 1);
}

T5Bias::T5Bias(int64_t n_heads, int64_t num_buckets, int64_t max_distance, double init_std)
    : n_heads_(n_heads), max_distance_(max_distance) {
  auto table = init_std > 0 ? torch::randn({n_heads, num_buckets}) * init_std : torch::zeros({n_heads, num_buckets});
  table_ = register_parameter("table", table);
  std::vector<int64_t> buckets(max_distance + 1);
  for (int64_t d = 0; d <= max_distance; ++d) buckets[d] = t5_causal_bucket(d, num_buckets, max_distance);
  bucket_of_ = torch::tensor(buckets, torch::kInt64);
}

torch::Tensor T5Bias::score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                                 int64_t k_end) {
  const BlockRange block{q_begin, q_end, k_begin, k_end};
  follow_device(bucket_of_, positions.values.device());
  const auto long_options = positions.values.options().dtype(torch::kInt64);
  if (positions.is_arange) {
    // Distances of the block, clamped to [0, max_distance] (bucket(d) is the last bucket for every
    // d >= max_distance, and future keys, d < 0, are masked anyway): n table entries per head, expanded.
    const auto distances =
        torch::arange(block.min_distance(), block.max_distance() + 1, long_options).clamp_(0, max_distance_);
    return toeplitz_expand(table_.index_select(1, bucket_of_.index_select(0, distances)), block.rows(), block.keys());
  }
  // Explicit positions: a table is indexed by integers, so float positions are truncated first (as the
  // learned table does).
  const auto p = positions.values.to(torch::kInt64);
  const auto distances =
      (p.slice(-1, q_begin, q_end).unsqueeze(-1) - p.slice(-1, k_begin, k_end).unsqueeze(-2)).clamp_(0, max_distance_);
  return batch_major(table_.index_select(1, bucket_of_.index_select(0, distances.flatten()))
                         .view(heads_first_sizes(n_heads_, distances)));
}

namespace {

struct T5Params {
  int64_t num_buckets, max_distance;
  double init_std;
};

T5Params read_t5(const nlohmann::json& p, const ModelShape&) {
  const T5Params t{param<int64_t>(p, "num_buckets"), param<int64_t>(p, "max_distance"), param<double>(p, "init_std")};
  if (t.num_buckets < 2) reject_param("num_buckets", "must be >= 2, got " + std::to_string(t.num_buckets));
  if (t.max_distance <= t.num_buckets / 2) {
    reject_param("max_distance", "must exceed num_buckets / 2 = " + std::to_string(t.num_buckets / 2) + ", got " +
                                     std::to_string(t.max_distance));
  }
  if (!(t.init_std >= 0) || !std::isfinite(t.init_std)) {
    reject_param("init_std", "must be a finite number >= 0, got " + format_number(t.init_std));
  }
  return t;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(t5, [] {
  SchemeInfo info;
  info.name = "t5";
  info.description = "learnable per-head bias table[h, bucket(i - j)] over causal T5 buckets (exact, then log-spaced)";
  info.reference = "Raffel et al. 2020 (T5), HF _relative_position_bucket(bidirectional=False)";
  info.params = {{"num_buckets", 32, "number of buckets; the first num_buckets/2 are exact distances"},
                 {"max_distance", 128, "distances >= this share the last bucket"},
                 {"init_std", 0.0, "table initialisation: 0 = zeros; > 0 = N(0, init_std^2) (HF T5: d_model^-0.5)"}};
  info.integer_positions = true;
  return define_scheme<T5Bias, kBiasHook>(info, read_t5, [](const T5Params& t, const ModelShape& shape) {
    return std::make_shared<T5Bias>(shape.n_heads, t.num_buckets, t.max_distance, t.init_std);
  });
}());

}  // namespace extrap
