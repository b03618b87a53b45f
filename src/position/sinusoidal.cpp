// Sinusoidal absolute positions (Vaswani et al.): PE[p, 2i] = sin(p / base^(2i/d)),
// PE[p, 2i+1] = cos(p / base^(2i/d)), added to the token embeddings. Defined for any position,
// but a model trained on short windows has never seen the larger angles.
#include "position/scheme.h"

namespace extrap {

// Exposed for tests: the [..., T, d] table for the given positions [..., T].
torch::Tensor sinusoidal_table(const torch::Tensor& positions, int64_t d_model, double base) {
  auto options = positions.options().dtype(torch::kFloat64);
  auto pair = torch::arange(0, d_model, 2, options);                           // 2i
  auto inv_freq = torch::pow(torch::tensor(base, options), -pair / double(d_model));
  auto angles = positions.to(torch::kFloat64).unsqueeze(-1) * inv_freq;  // [..., T, ceil(d/2)]
  auto table = torch::stack({angles.sin(), angles.cos()}, -1).flatten(-2);
  return table.narrow(-1, 0, d_model).to(torch::kFloat32);
}

namespace {

class SinusoidalPositions : public PositionScheme {
 public:
  SinusoidalPositions(int64_t d_model, double base) : d_model_(d_model), base_(base) {}
  torch::Tensor input_embedding(const Positions& positions) override {
    return sinusoidal_table(positions.values, d_model_, base_);
  }

 private:
  int64_t d_model_;
  double base_;
};

}  // namespace

EXTRAP_REGISTER_SCHEME(sinusoidal, [] {
  SchemeInfo info;
  info.name = "sinusoidal";
  info.description = "fixed sin/cos absolute positions added to the token embeddings";
  info.reference = "Vaswani et al. 2017, Attention Is All You Need";
  info.params = {{"base", 10000.0, "wavelength base"}};
  const auto read = [](const nlohmann::json& p, const ModelShape&) { return read_base(p); };
  return define_scheme<SinusoidalPositions, kEmbeddingHook>(info, read, [](double base, const ModelShape& shape) {
    return std::make_shared<SinusoidalPositions>(shape.d_model, base);
  });
}());

}  // namespace extrap
