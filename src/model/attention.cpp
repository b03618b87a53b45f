#include "model/attention.h"

#include <cmath>

#include "common/torch_compat.h"
#include "model/fused_attention.h"
#include "model/score_tiles.h"
#include "model/tiled_attention.h"

namespace extrap {

torch::Tensor blockwise_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call,
                                         double dropout, bool training) {
  const int64_t length = qk.q.size(2);
  QueryKey scaled = qk;  // scaling q is cheaper than scaling the scores
  for (auto* q : scaled.queries()) *q = *q * call.scale;
  const BiasSource biases{&call.scheme, call.positions};
  std::vector<torch::Tensor> outputs, lses;
  const auto plans = plan_attention(length, call.block, call.mask, qk.rule, call.documents.view());
  for (const auto& plan : plans) {
    auto scores = block_scores(scaled, plan);  // [B, H, rows, columns], float32
    scores = scores + mask_tile(plan, call.mask, scores.options(), call.documents);
    if (const auto bias = biases.block_bias(plan); bias.defined()) scores = scores + bias;
    if (call.log_sum_exp) lses.push_back(torch::logsumexp(scores, -1));
    auto probs = torch::softmax(scores, -1);
    if (training && dropout > 0) probs = torch::dropout(probs, dropout, true);
    probs = probs.to(v.scalar_type());
    torch::Tensor out;
    for (const auto& seg : plan.segments) {
      auto part = torch::matmul(probs.narrow(-1, seg.column, seg.end - seg.begin), v.slice(2, seg.begin, seg.end));
      out = out.defined() ? out + part : part;
    }
    outputs.push_back(out.transpose(1, 2));  // [B, rows, H, hd]
  }
  if (call.log_sum_exp) *call.log_sum_exp = lses.size() == 1 ? lses[0] : torch::cat(lses, 2);
  return outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 1);
}

torch::Tensor sdpa_causal_attention(const QueryKey& qk, const torch::Tensor& v, const AttentionCall& call,
                                    double dropout, bool training) {
  // A scheme's bias is the same kind of tensor for every block: probing one score tells. Document
  // masks go to the tiled kernel too (its per-row mask needs no [B, T, T] tensor).
  const bool plain = !qk.has_far() && !call.documents.defined() && !call.log_sum_exp &&
                     !call.scheme.score_bias(call.positions, 0, 1, 0, 1).defined();
  if (!compat::kHasSdpa || !plain) {
    return training && dropout > 0 ? blockwise_causal_attention(qk, v, call, dropout, training)
                                   : tiled_causal_attention(qk, v, call);
  }
  const int64_t length = qk.q.size(2);
  torch::Tensor mask;  // undefined: plain causal
  if (call.mask.window > 0) {
    const auto index = torch::TensorOptions().dtype(torch::kLong).device(qk.q.device());
    const auto positions = torch::arange(length, index);
    mask = visible(positions.unsqueeze(1), positions.unsqueeze(0), call.mask);
  }
  return compat::scaled_dot_product_attention(qk.q, qk.k, v, mask, training ? dropout : 0.0, !mask.defined(), call.scale)
      .transpose(1, 2);
}

namespace {

// The keys query i sees when its document starts at key `first` (0: the window's start): the
// window's [lo, i] and sinks [0, min(sinks, lo)), both from `first` on.
int64_t visible_keys(const AttentionConfig& attention, int64_t i, int64_t first) {
  const int64_t lo = attention.window > 0 ? std::max<int64_t>(0, i - attention.window + 1) : 0;
  const int64_t sink_end = attention.window > 0 ? std::min(attention.sinks, lo) : 0;
  return (i + 1 - std::max(lo, first)) + std::max<int64_t>(0, sink_end - first);
}

// The inference-time temperature of a query at token `index` of its document, in a window of
// `length` tokens.
double temperature(const AttentionConfig& attention, int64_t index, int64_t length, int64_t train_length) {
  const double given = attention.temperature_scale;
  switch (attention.temperature) {
    case Temperature::kNone: return 1.0;
    case Temperature::kConstant: return given;  // NoPE head-wise temperature, one lambda for every head
    case Temperature::kLlama4: {  // transformers' Llama4TextAttention (attn_scale, floor_scale)
      const int64_t floor_scale = attention.temperature_floor > 0 ? attention.temperature_floor : train_length;
      return 1.0 + (given > 0 ? given : 0.1) * std::log(std::floor(double(index + 1) / double(floor_scale)) + 1.0);
    }
    case Temperature::kLogLength:  // DroPE's beta = 1 + c ln(L_test / L_train), 1 within L_train
      return 1.0 + (given > 0 ? given : 0.412) * std::log(std::max(1.0, double(length) / double(train_length)));
  }
  return 1.0;
}

// The factor of a query that sees `visible` keys and is token `index` of its document.
double query_scale(const AttentionConfig& attention, int64_t index, int64_t visible, double log_train) {
  double scale = 1.0;
  if (attention.logn == LognMode::kTrain) {
    // Su's bert4keras softmax_plus: n = the number of keys the query sees, floored.
    scale = std::log(double(std::max(visible, attention.logn_floor))) / log_train;
  } else if (attention.logn == LognMode::kInference) {
    scale = std::max(1.0, std::log(double(index + 1)) / log_train);  // logn†: unchanged within L_train
  }
  if (attention.qk_norm == QkNorm::kCosine && attention.cosine_scale == CosineScale::kPosition) {
    scale *= 4.0 * std::log(double(index + 1));
  }
  return scale;
}

// f(index of the query in its document, keys it sees) for every query: [T] float32, or [B, T] with
// documents.
template <typename PerQuery>
torch::Tensor per_query(const AttentionConfig& attention, int64_t length, const DocumentStarts& documents, PerQuery f) {
  const int64_t rows = documents.defined() ? documents.batch : 1;
  std::vector<float> values(rows * length);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < length; ++i) {
      const int64_t first = documents.defined() ? documents.row(r)[i] : 0;
      values[r * length + i] = float(f(i - first, visible_keys(attention, i, first)));
    }
  }
  const auto tensor = torch::tensor(values);
  return documents.defined() ? tensor.view({rows, length}) : tensor;
}

}  // namespace

torch::Tensor query_scales(const AttentionConfig& attention, int64_t length, int64_t train_length,
                           const DocumentStarts& documents) {
  const bool logn = attention.logn != LognMode::kNone;
  const bool cosine_by_position = attention.qk_norm == QkNorm::kCosine && attention.cosine_scale == CosineScale::kPosition;
  if (!logn && !cosine_by_position && attention.temperature == Temperature::kNone) return {};
  const double log_train = std::log(double(train_length));
  return per_query(attention, length, documents, [&](int64_t index, int64_t visible) {
    return query_scale(attention, index, visible, log_train) * temperature(attention, index, length, train_length);
  });
}

torch::Tensor visible_key_logs(const AttentionConfig& attention, int64_t length, const DocumentStarts& documents) {
  return per_query(attention, length, documents, [](int64_t, int64_t visible) { return std::log(double(visible)); });
}

double score_scale(const AttentionConfig& attention, int64_t head_dim, int64_t train_length) {
  if (attention.qk_norm == QkNorm::kQuery || attention.qk_norm == QkNorm::kKey) return 1.0;
  if (attention.qk_norm == QkNorm::kCosine) {
    return attention.cosine_scale == CosineScale::kFixed ? 4.0 * std::log(double(train_length) / 2.0) : 1.0;
  }
  return 1.0 / std::sqrt(double(head_dim));
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelConfig& model, const AttentionConfig& attention,
                                                 std::shared_ptr<PositionScheme> scheme, int64_t train_length)
    : n_heads_(model.n_heads),
      head_dim_(model.head_dim()),
      train_length_(train_length),
      dropout_(model.dropout),
      attention_(attention),
      scheme_(std::move(scheme)) {
  qkv_ = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(model.d_model, 3 * model.d_model)
                                                      .bias(model.bias)));
  proj_ = register_module("proj",
                          torch::nn::Linear(torch::nn::LinearOptions(model.d_model, model.d_model).bias(model.bias)));
  if (attention.qk_bias) qk_bias_ = register_parameter("qk_bias", torch::zeros({2, n_heads_, 1, head_dim_}));
  if (attention.sink_logit) sink_logit_ = register_parameter("sink_logit", torch::zeros({n_heads_}));
  if (attention.ssmax) ssmax_scale_ = register_parameter("ssmax_scale", torch::full({n_heads_}, attention.ssmax_init));
  if (attention.output_gate != OutputGate::kNone) {
    const int64_t gates = attention.output_gate == OutputGate::kHead ? n_heads_ : model.d_model;
    gate_ = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(model.d_model, gates).bias(model.bias)));
  }
}

void CausalSelfAttentionImpl::init_weights(double std, double residual_std) {
  init_linear(qkv_, std);
  init_linear(proj_, residual_std);
  if (gate_) init_linear(gate_, std);
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, const Positions& positions,
                                               const DocumentMask& documents) {
  const int64_t batch = x.size(0), length = x.size(1);
  // [B, T, 3, H, hd] -> three [B, H, T, hd]. unbind's backward is one stack; indexing would
  // zero-fill a full-size gradient per part.
  auto qkv = linear(x, qkv_).view({batch, length, 3, n_heads_, head_dim_}).permute({2, 0, 3, 1, 4}).unbind(0);
  QueryKey qk{qkv[0], qkv[1]};
  const auto& v = qkv[2];
  if (qk_bias_.defined()) {
    qk.q = qk.q + qk_bias_[0];
    qk.k = qk.k + qk_bias_[1];
  }
  // Normalising before the scheme is the same as after for rotations (norm-preserving).
  const auto unit = [](const torch::Tensor& t) { return t / t.norm(2, -1, true).clamp_min(1e-6); };
  if (attention_.qk_norm == QkNorm::kQuery || attention_.qk_norm == QkNorm::kCosine) qk.q = unit(qk.q);
  if (attention_.qk_norm == QkNorm::kKey || attention_.qk_norm == QkNorm::kCosine) qk.k = unit(qk.k);
  static PositionScheme no_positions;  // every hook the identity: what a DroPE layer runs
  PositionScheme& scheme = positions_dropped_ ? no_positions : *scheme_;
  scheme.transform_qk(qk, positions);
  const auto scales = query_scales(attention_, length, train_length_, documents.view());
  if (scales.defined()) {
    const auto per_query = scales.to(qk.q.device()).view({scales.dim() == 2 ? batch : 1, 1, length, 1});
    for (auto* q : qk.queries()) *q = *q * per_query;
  }
  if (ssmax_scale_.defined()) {  // logits * s_h ln(n_i), n_i the keys query i sees
    const auto logs = visible_key_logs(attention_, length, documents.view()).to(qk.q.device());
    const auto factor = ssmax_scale_.view({1, n_heads_, 1, 1}) * logs.view({logs.dim() == 2 ? batch : 1, 1, length, 1});
    for (auto* q : qk.queries()) *q = *q * factor;
  }
  torch::Tensor lse;
  AttentionCall call{scheme, positions, KeyMask{attention_.window, attention_.sinks}, block_,
                     score_scale(attention_, head_dim_, train_length_), product_dtype_, documents};
  if (sink_logit_.defined()) call.log_sum_exp = &lse;
  torch::Tensor y;
  if (kernel_ == AttentionKernel::kSdpa) {
    y = sdpa_causal_attention(qk, v, call, dropout_, is_training());
  } else if (kernel_ == AttentionKernel::kBlockwise || (is_training() && dropout_ > 0)) {
    y = blockwise_causal_attention(qk, v, call, dropout_, is_training());  // the only kernel with dropout
  } else if (kernel_ == AttentionKernel::kTiled) {
    y = tiled_causal_attention(qk, v, call);
  } else {
    // The fused kernel computes in float32: under bf16 autocast, the projections hand it bf16.
    QueryKey qk32 = qk;
    for (auto* t : qk32.tensors()) *t = t->to(torch::kFloat32);
    y = fused_causal_attention(qk32, v.to(torch::kFloat32), call);
  }
  if (sink_logit_.defined()) {
    // One more softmax column of logit s_h and no value: e^lse / (e^lse + e^s) = sigmoid(lse - s).
    y = y * torch::sigmoid(lse - sink_logit_.view({1, n_heads_, 1})).transpose(1, 2).unsqueeze(-1);
  }
  if (gate_) {  // sigmoid(x W_g) per head or per dimension, before the output projection
    const auto gate = torch::sigmoid(linear(x, gate_));
    y = y * (gate.size(-1) == n_heads_ ? gate.unsqueeze(-1) : gate.view({batch, length, n_heads_, head_dim_}));
  }
  y = linear(y.reshape({batch, length, n_heads_ * head_dim_}), proj_);
  return torch::dropout(y, dropout_, is_training());
}

}  // namespace extrap
