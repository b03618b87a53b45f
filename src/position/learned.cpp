// Learned absolute positions: a trainable [max_positions, d_model] table added to the token
// embeddings. It has no entry beyond its table, so it cannot be evaluated at longer lengths.
#include "position/scheme.h"

namespace extrap {
namespace {

class LearnedPositions : public PositionScheme {
 public:
  LearnedPositions(int64_t max_positions, int64_t d_model) {
    table_ = register_parameter("table", torch::randn({max_positions, d_model}) * 0.02);
  }
  torch::Tensor input_embedding(const Positions& positions) override {
    if (positions.is_arange) return table_.narrow(0, 0, positions.size());
    return table_.index_select(0, positions.values.to(torch::kLong));
  }
  int64_t max_length() const override { return table_.size(0); }

 private:
  torch::Tensor table_;
};

}  // namespace

EXTRAP_REGISTER_SCHEME(learned, SchemeInfo{
    "learned", "trainable absolute position table added to the token embeddings (GPT-2)",
    "Radford et al. 2019 (GPT-2); Vaswani et al. 2017",
    {{"max_positions", 0, "table size; 0 means the training length"}},
    [](const nlohmann::json& p, const ModelShape& shape) {
      int64_t size = param<int64_t>(p, "max_positions");
      if (size < 0) reject_param("max_positions", "must be >= 0, got " + std::to_string(size));
      if (size == 0) size = shape.train_length;
      if (size < shape.train_length) {
        reject_param("max_positions", std::to_string(size) + " is shorter than data.train_length = " +
                                          std::to_string(shape.train_length));
      }
      return std::make_shared<LearnedPositions>(size, shape.d_model);
    }, kEmbeddingHook, true});

}  // namespace extrap
