#include "model/linear.h"

namespace extrap {

void init_linear(const torch::nn::Linear& layer, double std) {
  torch::NoGradGuard no_grad;
  layer->weight.normal_(0.0, std);
  if (layer->bias.defined()) layer->bias.zero_();
}

}  // namespace extrap
