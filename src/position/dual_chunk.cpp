// Dual Chunk Attention (An et al., ICML 2024, "Training-Free Long-Context Scaling of Large Language
// Models"; code: HKUNLP/ChunkLlama, chunkllama_attn_replace.py), as Qwen2.5-1M and Qwen3 use it.
// The window is cut into chunks of c = s - w tokens (s: chunk size, w: local window), and every key
// sits at its position within its chunk, p_j mod c. Three passes merged by chunk:
//   intra-chunk (same chunk):    queries at p_i mod c, so distances are exact;
//   successive (previous chunk): queries at min(p_i mod c + c, s), exact within w of the boundary;
//   inter-chunk (earlier ones):  queries at the constant min(2c - 1, s).
// No relative position exceeds s <= L_train, however long the input.
#include "position/merged_rope.h"

namespace extrap {
namespace {

class DualChunk : public MergedRope {
 public:
  DualChunk(const RopeSpec& spec, int64_t chunk_size, int64_t local_window)
      : MergedRope(spec), size_(chunk_size), chunk_(chunk_size - local_window) {}
  std::vector<PassPositions> pass_positions(const torch::Tensor& p) const override {
    const double c = double(chunk_), s = double(size_);
    const auto within = torch::fmod(p, c);
    const auto inter = torch::full({1}, std::min(2.0 * c - 1.0, s), p.options());
    return {{within, within}, {torch::clamp_max(within + c, s), within}, {inter, within}};
  }
  PassRule rule() const override { return {0, chunk_}; }

 private:
  int64_t size_, chunk_;
};

struct DualChunkParams {
  RopeSpec spec;
  int64_t chunk_size, local_window;
};

DualChunkParams read_dual_chunk(const nlohmann::json& p, const ModelShape& shape) {
  DualChunkParams r{rope_spec_from_params(p, shape),
                    length_param(p, "chunk_size", shape.train_length * 3 / 4, "3 train_length / 4"),
                    length_param(p, "local_window", shape.train_length / 16, "train_length / 16")};
  if (r.chunk_size > shape.train_length) {
    reject_param("chunk_size", std::to_string(r.chunk_size) + " does not fit the training length " +
                                   std::to_string(shape.train_length));
  }
  if (r.local_window >= r.chunk_size) {
    reject_param("local_window", std::to_string(r.local_window) + " must be below chunk_size " +
                                     std::to_string(r.chunk_size) + " (chunks are chunk_size - local_window tokens)");
  }
  return r;
}

}  // namespace

EXTRAP_REGISTER_SCHEME(dual_chunk, [] {
  SchemeInfo info;
  info.name = "dual_chunk";
  info.description = "Dual Chunk Attention: keys at their position within a chunk; intra-, successive- and "
                     "inter-chunk query positions (training-free)";
  info.reference = "An et al. 2024 (ICML), Training-Free Long-Context Scaling of LLMs (ChunkLlama); code: "
                   "HKUNLP/ChunkLlama";
  info.params = merged_rope_params(
      {{"chunk_size", 0, "s: no relative position exceeds it; 0 = 3 train_length / 4 (ChunkLlama's)"},
       {"local_window", 0, "w: chunks are s - w tokens; 0 = train_length / 16 (ChunkLlama's)"}});
  info.family = kRotaryFamily;
  return define_scheme<DualChunk, kQueryKeyHook | kFarPassHook | kChunkedPassHook>(
      info, read_dual_chunk, [](const DualChunkParams& r, const ModelShape&) {
        return std::make_shared<DualChunk>(r.spec, r.chunk_size, r.local_window);
      });
}());

}  // namespace extrap
