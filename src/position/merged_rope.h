#pragma once
// The merged-score RoPE family: ReRoPE and Leaky ReRoPE, Self-Extend, STRING, Dual Chunk Attention.
// Each is RoPE scored in several passes, every pass rotating queries and keys to its own position
// map, with a PassRule saying which pass scores which (query, key) pair. A method of the family is
// its position maps and its rule; the attention kernels merge the passes blockwise for all of them.
#include "position/rope.h"

namespace extrap {

// Where one pass rotates queries and keys to: float64 positions shaped like the token positions
// ([T] or [B, T]) or [1] for a constant; undefined means the token positions themselves.
struct PassPositions {
  torch::Tensor query, key;
};

class MergedRope : public PositionScheme {
 public:
  explicit MergedRope(const RopeSpec& spec);
  void transform_qk(QueryKey& qk, const Positions& positions) final;
  // Every pass's positions (pass 0 first) for token positions p (float64).
  virtual std::vector<PassPositions> pass_positions(const torch::Tensor& p) const = 0;
  virtual PassRule rule() const = 0;

 private:
  Rope rope_;
};

// The rotary params plus one integer param per entry, each "0 = default"; for the schemes' infos.
std::vector<SchemeParam> merged_rope_params(std::vector<SchemeParam> own);

// Reads an integer param whose 0 stands for `fallback` (at least 1; `fallback_text` says what it
// is, as "train_length / 4"), and rejects values below 0.
int64_t length_param(const nlohmann::json& params, const char* key, int64_t fallback, const char* fallback_text);

}  // namespace extrap
