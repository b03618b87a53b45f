#include "model/gpt.h"

#include <algorithm>
#include <cmath>

namespace extrap {

LayerNormImpl::LayerNormImpl(int64_t dim, bool bias) {
  weight_ = register_parameter("weight", torch::ones({dim}));
  if (bias) bias_ = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight_.size(0)}, weight_, bias_, 1e-5);
}

BlockImpl::BlockImpl(const ModelConfig& config, const AttentionConfig& attention, std::shared_ptr<PositionScheme> scheme,
                     int64_t train_length)
    : dropout_(config.dropout) {
  ln1_ = register_module("ln1", LayerNorm(config.d_model, config.bias));
  attn = register_module("attn", CausalSelfAttention(config, attention, std::move(scheme), train_length));
  ln2_ = register_module("ln2", LayerNorm(config.d_model, config.bias));
  fc_ = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.mlp_width()).bias(config.bias)));
  fc_proj_ = register_module(
      "fc_proj", torch::nn::Linear(torch::nn::LinearOptions(config.mlp_width(), config.d_model).bias(config.bias)));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const Positions& positions, const DocumentMask& documents) {
  auto h = x + attn(ln1_(x), positions, documents);
  auto mlp = linear(torch::gelu(linear(ln2_(h), fc_)), fc_proj_);
  return h + torch::dropout(mlp, dropout_, is_training());
}

GPTImpl::GPTImpl(const RunConfig& run, std::shared_ptr<PositionScheme> scheme,
                 const std::vector<std::shared_ptr<PositionScheme>>& layer_schemes)
    : config_(run.model), scheme_(std::move(scheme)), layer_schemes_(layer_schemes) {
  const ModelConfig& config = run.model;
  wte_ = register_module("wte", torch::nn::Embedding(config.vocab_size, config.d_model));
  register_module("position", scheme_);
  // Overriding schemes are registered once per `layers` entry, so layers sharing an entry share
  // its parameters, as all other layers share the model-wide scheme's.
  for (std::size_t e = 0; e < run.layer_schemes.size(); ++e) {
    for (std::size_t l = 0; l < run.layers.size(); ++l) {
      if (run.layers[l].scheme_group == int(e)) {
        register_module("layer_position" + std::to_string(e), layer_schemes_[l]);
        break;
      }
    }
  }
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layers; ++i) {
    blocks_->push_back(Block(config, run.layers[i].attention, layer_schemes_[i], run.data.train_length));
  }
  ln_f_ = register_module("ln_f", LayerNorm(config.d_model, config.bias));
  if (!config.tie_embeddings) {
    lm_head_ = register_module("lm_head",
                               torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.vocab_size).bias(false)));
  }
  init_weights();
}

namespace {
RunConfig single_scheme_config(const ModelConfig& model) {
  RunConfig config;
  config.model = model;
  config.layers.assign(model.n_layers, LayerConfig{});
  return config;
}
}  // namespace

GPTImpl::GPTImpl(const ModelConfig& model, std::shared_ptr<PositionScheme> scheme)
    : GPTImpl(single_scheme_config(model), scheme, std::vector<std::shared_ptr<PositionScheme>>(model.n_layers, scheme)) {}

// GPT-2 / nanoGPT initialisation: N(0, 0.02) for linear and embedding weights, zero biases, and
// the residual output projections scaled by 1/sqrt(2 * n_layers) so the residual stream's variance
// does not grow with depth. LayerNorms start at 1/0; schemes initialise their own parameters.
void GPTImpl::init_weights() {
  torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * double(config_.n_layers));
  wte_->weight.normal_(0.0, 0.02);
  for (auto& module : *blocks_) {
    auto* block = module->as<BlockImpl>();
    block->attn->init_weights(0.02, residual_std);
    init_linear(block->fc(), 0.02);
    init_linear(block->fc_proj(), residual_std);
  }
  if (lm_head_) init_linear(lm_head_, 0.02);
}

void GPTImpl::set_attention_block(int64_t block) {
  for (auto& block_module : *blocks_) block_module->as<BlockImpl>()->attn->set_block_size(block);
}

void GPTImpl::set_attention_kernel(AttentionKernel kernel, c10::ScalarType products) {
  for (auto& block_module : *blocks_) block_module->as<BlockImpl>()->attn->set_kernel(kernel, products);
}

void GPTImpl::set_positions_dropped(bool dropped) {
  positions_dropped_ = dropped;
  for (auto& block_module : *blocks_) block_module->as<BlockImpl>()->attn->set_positions_dropped(dropped);
}

void GPTImpl::after_optimizer_step() {
  std::vector<PositionScheme*> done{scheme_.get()};
  scheme_->after_optimizer_step();
  for (const auto& scheme : layer_schemes_) {
    if (std::find(done.begin(), done.end(), scheme.get()) != done.end()) continue;
    done.push_back(scheme.get());
    scheme->after_optimizer_step();
  }
}

int64_t GPTImpl::parameter_count() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

torch::Tensor GPTImpl::forward(const torch::Tensor& tokens, const Positions& positions, const DocumentOptions& documents) {
  const WindowLayout window = window_layout(tokens, positions, documents);
  auto x = wte_(tokens);
  if (!positions_dropped_) {
    const auto position_embedding = scheme_->input_embedding(window.positions);
    if (position_embedding.defined()) x = x + position_embedding;
  }
  x = torch::dropout(x, config_.dropout, is_training());
  for (auto& block : *blocks_) x = block->as<BlockImpl>()->forward(x, window.positions, window.documents);
  x = ln_f_(x);
  // float32 also when autocast ran the head in bf16: the loss and the evaluation NLL need it.
  return torch::linear(x, lm_head_ ? lm_head_->weight : wte_->weight).to(torch::kFloat32);
}

GPT build_model(const RunConfig& config, int64_t context_length) {
  const ModelShape shape = config.shape(context_length);
  auto model_wide = make_scheme(config.position.scheme, config.position.params, shape);
  std::vector<std::shared_ptr<PositionScheme>> group_schemes;
  for (const auto& p : config.layer_schemes) {
    group_schemes.push_back(p.scheme.empty() ? nullptr : make_scheme(p.scheme, p.params, shape));
  }
  std::vector<std::shared_ptr<PositionScheme>> layer_schemes;
  for (const auto& layer : config.layers) {
    layer_schemes.push_back(layer.scheme_group < 0 ? model_wide : group_schemes[layer.scheme_group]);
  }
  GPT model(config, model_wide, layer_schemes);
  model->set_positions_dropped(config.train.drop_positions > 0);  // a DroPE run ends without positions
  return model;
}

}  // namespace extrap
