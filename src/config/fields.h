#pragma once
// The one table of each config struct's JSON fields: its name, its storage (whose initializer is
// the default) and its value check. Writers and readers visit the same table, so a field is named
// once. Private to src/config/.
#include "common/error.h"
#include "config/run_config.h"

namespace extrap::fields {

struct NoCheck {};
struct AtLeast {
  int64_t low;
};
struct InRange {
  double low, high;
  bool open_high;
};

inline const auto& names_of(LognMode) { return kLognNames; }
inline const auto& names_of(QkNorm) { return kQkNormNames; }
inline const auto& names_of(CosineScale) { return kCosineScaleNames; }
inline const auto& names_of(OutputGate) { return kOutputGateNames; }
inline const auto& names_of(Temperature) { return kTemperatureNames; }
inline const auto& names_of(TrainPositions) { return kTrainPositionNames; }
inline const auto& names_of(EvalPositions) { return kEvalPositionNames; }
inline const auto& names_of(Precision) { return kPrecisionNames; }

template <typename Visitor>
void visit(ModelConfig& m, Visitor&& v) {
  v("vocab_size", m.vocab_size, AtLeast{2});
  v("d_model", m.d_model, AtLeast{1});
  v("n_layers", m.n_layers, AtLeast{1});
  v("n_heads", m.n_heads, AtLeast{1});
  v("d_mlp", m.d_mlp, AtLeast{0});
  v("dropout", m.dropout, InRange{0.0, 1.0, true});
  v("bias", m.bias, NoCheck{});
  v("tie_embeddings", m.tie_embeddings, NoCheck{});
}

template <typename Visitor>
void visit(AttentionConfig& a, Visitor&& v) {
  v("window", a.window, AtLeast{0});
  v("window_receptive_field", a.window_receptive_field, InRange{0.0, 1.0, false});
  v("sinks", a.sinks, AtLeast{0});
  v("logn", a.logn, NoCheck{});
  v("logn_floor", a.logn_floor, AtLeast{1});
  v("qk_norm", a.qk_norm, NoCheck{});
  v("cosine_scale", a.cosine_scale, NoCheck{});
  v("qk_bias", a.qk_bias, NoCheck{});
  v("sink_logit", a.sink_logit, NoCheck{});
  v("output_gate", a.output_gate, NoCheck{});
  v("ssmax", a.ssmax, NoCheck{});
  v("ssmax_init", a.ssmax_init, InRange{0.0, 100.0, false});
  v("temperature", a.temperature, NoCheck{});
  v("temperature_scale", a.temperature_scale, InRange{0.0, 100.0, false});
  v("temperature_floor", a.temperature_floor, AtLeast{0});
}

template <typename Visitor>
void visit(PositionSampling& s, Visitor&& v) {
  v("train", s.train, NoCheck{});
  v("range", s.range, AtLeast{0});
  v("chunks", s.chunks, AtLeast{1});
  v("eval", s.eval, NoCheck{});
}

template <typename Visitor>
void visit(DataConfig& d, Visitor&& v) {
  v("dataset", d.dataset, NoCheck{});
  v("train_length", d.train_length, AtLeast{1});
  v("reset_positions", d.reset_positions, NoCheck{});
  v("mask_documents", d.mask_documents, NoCheck{});
}

template <typename Visitor>
void visit(TrainConfig& t, Visitor&& v) {
  v("batch_size", t.batch_size, AtLeast{1});
  v("steps", t.steps, AtLeast{1});
  v("lr", t.lr, InRange{1e-12, 10.0, false});
  v("min_lr_ratio", t.min_lr_ratio, InRange{0.0, 1.0, false});
  v("warmup_steps", t.warmup_steps, AtLeast{0});
  v("weight_decay", t.weight_decay, InRange{0.0, 10.0, false});
  v("beta1", t.beta1, InRange{0.0, 1.0, true});
  v("beta2", t.beta2, InRange{0.0, 1.0, true});
  v("eps", t.eps, InRange{1e-30, 1.0, false});
  v("grad_clip", t.grad_clip, InRange{0.0, 1e9, false});
  v("drop_positions", t.drop_positions, InRange{0.0, 1.0, true});
  v("log_interval", t.log_interval, AtLeast{1});
  v("eval_interval", t.eval_interval, AtLeast{1});
  v("eval_tokens", t.eval_tokens, AtLeast{1});
  v("checkpoint_interval", t.checkpoint_interval, AtLeast{1});
  v("keep_checkpoints", t.keep_checkpoints, AtLeast{1});
  v("precision", t.precision, NoCheck{});
}

// The struct as a JSON object (enums by name).
template <typename Config>
nlohmann::json write(Config config) {
  nlohmann::json object = nlohmann::json::object();
  visit(config, [&](const char* name, auto& value, auto) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_enum_v<T>) {
      object[name] = enum_name(names_of(value), value);
    } else {
      object[name] = value;
    }
  });
  return object;
}

// "must be in [low, high), got <given>".
std::string range_problem(const InRange& range, const nlohmann::json& given);

// Reads a complete object (every key present, JSON types already checked against the defaults)
// into a struct, checking each value; errors are "<prefix>.<name>: problem".
template <typename Config>
Config read(const nlohmann::json& object, const std::string& prefix) {
  Config config;
  visit(config, [&](const char* name, auto& value, auto check) {
    using T = std::decay_t<decltype(value)>;
    using Check = decltype(check);
    const std::string key = prefix + "." + name;
    const nlohmann::json& given = object.at(name);
    if constexpr (std::is_enum_v<T>) {
      value = parse_enum(names_of(value), given.get<std::string>(), key);
    } else {
      value = given.get<T>();
    }
    if constexpr (std::is_same_v<Check, AtLeast>) {
      if (int64_t(value) < check.low) {
        throw UserError(key + ": must be at least " + std::to_string(check.low) + ", got " + given.dump());
      }
    } else if constexpr (std::is_same_v<Check, InRange>) {
      const double x = double(value);
      if (!(x >= check.low && x <= check.high) || (check.open_high && x == check.high)) {
        throw UserError(key + ": " + range_problem(check, given));
      }
    }
  });
  return config;
}

}  // namespace extrap::fields
