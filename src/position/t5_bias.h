#pragma once
#include "position/scheme.h"

namespace extrap {

// T5's causal relative-position bucket (HF `_relative_position_bucket` with bidirectional=False) of
// the distance i - j: negative distances (future keys) fall in bucket 0; distances below
// max_exact = num_buckets / 2 have their own bucket; from max_exact up to max_distance the remaining
// buckets are log-spaced, max_exact + floor(log(n / max_exact) / log(max_distance / max_exact) *
// (num_buckets - max_exact)), computed in float64; everything beyond falls in the last bucket.
int64_t t5_causal_bucket(int64_t distance, int64_t num_buckets, int64_t max_distance);

// A learnable [n_heads, num_buckets] table; the bias of query i and key j in head h is
// table[h, bucket(i - j)]. One instance (one table) serves every layer that uses it, as in T5,
// where the first layer's relative_attention_bias is shared by all layers.
class T5Bias : public PositionScheme {
 public:
  // init_std 0: the table starts at zeros (attention starts position-free); > 0: N(0, init_std^2).
  T5Bias(int64_t n_heads, int64_t num_buckets, int64_t max_distance, double init_std);
  torch::Tensor score_bias(const Positions& positions, int64_t q_begin, int64_t q_end, int64_t k_begin,
                           int64_t k_end) override;
  torch::Tensor& table() { return table_; }

 private:
  int64_t n_heads_, max_distance_;
  torch::Tensor table_;       // parameter [H, num_buckets]
  torch::Tensor bucket_of_;   // int64 [max_distance + 1]: the bucket of each distance 0..max_distance
};

}  // namespace extrap
