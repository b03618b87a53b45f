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
    const auto index = positions.values.to(torch::kLong);
    auto sizes = index.sizes().vec();
    sizes.push_back(table_.size(1));
    return table_.index_select(0, index.reshape(-1)).view(sizes);
  }

 private:
  torch::Tensor table_;
};

}  // namespace

// The table size: max_positions, or the training length when 0.
static int64_t table_size(const nlohmann::json& p, const ModelShape& shape) {
  int64_t size = param<int64_t>(p, "max_positions");
  if (size < 0) reject_param("max_positions", "must be >= 0, got " + std::to_string(size));
  if (size == 0) size = shape.train_length;
  if (size < shape.train_length) {
    reject_param("max_positions", std::to_string(size) + " is shorter than data.train_length = " +
                                      std::to_string(shape.train_length));
  }
  return size;
}

EXTRAP_REGISTER_SCHEME(learned, [] {
  SchemeInfo info;
  info.name = "learned";
  info.description = "trainable absolute position table added to the token embeddings (GPT-2)";
  info.reference = "Radford et al. 2019 (GPT-2); Vaswani et al. 2017";
  info.params = {{"max_positions", 0, "table size; 0 means the training length"}};
  info.integer_positions = true;
  info.max_length = table_size;
  return define_scheme<LearnedPositions, kEmbeddingHook>(info, table_size, [](int64_t size, const ModelShape& shape) {
    return std::make_shared<LearnedPositions>(size, shape.d_model);
  });
}());

}  // namespace extrap
