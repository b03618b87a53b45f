#pragma once
// The run configuration as plain structs: what the model, trainer and evaluator read. The defaults
// written here are the only ones: default_config() (config.h) serialises these structs. Loading,
// merging and validation live in config.h.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "position/position_config.h"
#include "position/sampling_config.h"

namespace extrap {

struct ModelConfig {
  int64_t vocab_size = 257;  // the byte tokenizer's 256 bytes + end of text
  int64_t d_model = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_mlp = 0;  // 0: 4 x d_model (the resolved config holds the chosen width)
  double dropout = 0.0;
  bool bias = true;  // biases in every linear layer and LayerNorm
  bool tie_embeddings = true;
  int64_t head_dim() const { return d_model / n_heads; }
  int64_t mlp_width() const { return d_mlp > 0 ? d_mlp : 4 * d_model; }
};

enum class LognMode { kNone, kTrain, kInference };
enum class QkNorm { kNone, kQuery, kKey, kCosine };
enum class CosineScale { kFixed, kPosition };
enum class OutputGate { kNone, kHead, kElementwise };
enum class Temperature { kNone, kLlama4, kLogLength, kConstant };

inline constexpr EnumName<LognMode> kLognNames[] = {
    {LognMode::kNone, "none"}, {LognMode::kTrain, "train"}, {LognMode::kInference, "inference"}};
inline constexpr EnumName<QkNorm> kQkNormNames[] = {
    {QkNorm::kNone, "none"}, {QkNorm::kQuery, "query"}, {QkNorm::kKey, "key"}, {QkNorm::kCosine, "cosine"}};
inline constexpr EnumName<CosineScale> kCosineScaleNames[] = {{CosineScale::kFixed, "fixed"},
                                                              {CosineScale::kPosition, "position"}};
inline constexpr EnumName<OutputGate> kOutputGateNames[] = {
    {OutputGate::kNone, "none"}, {OutputGate::kHead, "head"}, {OutputGate::kElementwise, "elementwise"}};
inline constexpr EnumName<Temperature> kTemperatureNames[] = {{Temperature::kNone, "none"},
                                                              {Temperature::kLlama4, "llama4"},
                                                              {Temperature::kLogLength, "log_length"},
                                                              {Temperature::kConstant, "constant"}};

// Attention modifiers of one layer (the model-wide "attention" object, overridable per layer).
struct AttentionConfig {
  int64_t window = 0;                   // local attention: query i sees keys i-w+1..i (0: full causal)
  double window_receptive_field = 0.0;  // HWFA rule: choose w so that the windowed layers' receptive
                                        // field (w-1)*layers+1 is at most this fraction of the training
                                        // length (resolved into `window`)
  int64_t sinks = 0;                    // with a window: the first tokens stay visible (Λ-shaped mask)
  LognMode logn = LognMode::kNone;      // log-n scaling of the queries: in training, or logn† at inference
  int64_t logn_floor = 16;              // `train`: n = max(visible keys, floor)
  QkNorm qk_norm = QkNorm::kNone;       // query (QNA) | key (KNA, KeyNorm) | cosine (CosA)
  CosineScale cosine_scale = CosineScale::kFixed;  // CosA's 4 log n: n = train_length/2, or n = i+1
  bool qk_bias = false;                 // a learned bias on queries and keys only (Su's RoPE + bias)
  bool sink_logit = false;              // a learned logit per head as an extra softmax column (gpt-oss)
  OutputGate output_gate = OutputGate::kNone;  // sigmoid gate on the attention output (Qwen gated attention)
  bool ssmax = false;                   // Scalable-Softmax: logits * s_h ln(n), s_h learned per head
  double ssmax_init = 0.43;             // the initial s_h
  // Inference-time logit temperatures (on the queries): Llama 4's NoPE-layer temperature
  // 1 + scale ln(floor((p+1)/floor) + 1), DroPE's 1 + scale ln(L/L_train), or a constant.
  Temperature temperature = Temperature::kNone;
  double temperature_scale = 0.0;  // 0: the method's (llama4 0.1, log_length 0.412); constant: required
  int64_t temperature_floor = 0;   // llama4's floor_scale; 0: data.train_length
};

// The attention settings an inference-time treatment may change: the others shape what the weights
// learned.
inline const std::vector<std::string> kInferenceAttentionSettings{"window", "sinks", "logn", "temperature",
                                                                  "temperature_scale", "temperature_floor"};

// One layer as built: its scheme (the model-wide one or a `layers` override) and attention modifiers.
struct LayerConfig {
  int scheme_group = -1;  // -1: the model-wide scheme; otherwise the index of the `layers` entry
  AttentionConfig attention;
};

struct DataConfig {
  std::string dataset;          // required: a directory prepared by `extrap data`
  int64_t train_length = 128;  // tokens per training window
  // Documents packed into a window (docs/model.md, "Documents in a window"); both off by default.
  bool reset_positions = false;  // position ids restart at 0 at each document start
  bool mask_documents = false;   // no query attends to a key of another document
};

// Numeric precision of training and evaluation: bf16 autocasts the matrix products to bfloat16;
// weights, optimizer state, softmax statistics, loss and RoPE angles stay float32.
enum class Precision { kFp32, kBf16 };
inline constexpr EnumName<Precision> kPrecisionNames[] = {{Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}};

struct TrainConfig {
  int64_t batch_size = 32;
  int64_t steps = 300;
  double lr = 2e-3;
  double min_lr_ratio = 0.1;  // the cosine schedule ends at lr * min_lr_ratio
  int64_t warmup_steps = 50;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0: no clipping (the norm is still logged)
  // DroPE (Gelberg et al. 2025): the last fraction of the steps trains with every position encoding
  // dropped (no scheme hook runs); the trained model is then evaluated that way too.
  double drop_positions = 0.0;
  int64_t drop_from_step() const { return steps - int64_t(std::llround(drop_positions * double(steps))); }
  int64_t log_interval = 10;
  int64_t eval_interval = 100;
  int64_t eval_tokens = 16384;
  int64_t checkpoint_interval = 100;
  int64_t keep_checkpoints = 2;
  Precision precision = Precision::kFp32;
};

struct RunConfig {
  std::string name;  // empty: the config file's name
  uint64_t seed = 1234;
  ModelConfig model;
  PositionConfig position;                    // the model-wide scheme
  std::vector<PositionConfig> layer_schemes;  // one per `layers` entry (scheme "" when it sets no position)
  std::vector<LayerConfig> layers;            // resolved, one per model layer
  PositionSampling position_sampling;
  DataConfig data;
  TrainConfig train;
  nlohmann::json resolved;  // the full resolved JSON, written to the run directory
  // The scheme layer `l` runs with: its `layers` entry's, or the model-wide one.
  const PositionConfig& layer_position(std::size_t l) const {
    const int group = layers.at(l).scheme_group;
    return group < 0 ? position : layer_schemes.at(group);
  }
  // Every scheme some layer runs with (the model-wide one first).
  std::vector<PositionConfig> schemes_in_use() const;
  // The longest window all of them can represent (0: unbounded), from the params alone.
  int64_t max_length() const;
  ModelShape shape(int64_t context_length = 0) const {
    return {model.d_model, model.n_heads, model.n_layers, data.train_length, context_length};
  }
};

}  // namespace extrap
