// RoPE (Su et al.): rotate each (x_t, x_{t+d/2}) pair of q and k by position * theta_t with
// theta_t = base^(-2t/d) ("rotate-half" pairing, as in GPT-NeoX / LLaMA and the ReRoPE reference
// code), so that q_i . k_j depends only on i - j. Angles are computed in float64 (spec §7.6).
//
// Partial rotary (GPT-NeoX's rotary_ndims): only the first r = rotary_dims dimensions of each head
// rotate, pairing t with t + r/2 and using d = r in every formula; dimensions r..head_dim-1 pass through.
//
// Frequency scaling for longer contexts (extension factor s, spec §3.8, §3.9, §3.14): every variant
// changes only theta (PI, NTK-old/aware/fixed/mixed, dynamic NTK, YaRN's by-parts ramp) plus, for
// YaRN, a constant logit temperature. The model is rebuilt per evaluated length, so the factor derived
// from that length is fixed for the life of a Rope object.
#include "position/rope.h"

#include "common/files.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace extrap {

torch::Tensor rope_inverse_frequencies(int64_t dims, double base, const torch::TensorOptions& options) {
  auto t = torch::arange(0, dims / 2, options.dtype(torch::kFloat64));
  return torch::pow(torch::tensor(base, options.dtype(torch::kFloat64)), -2.0 * t / double(dims));
}

torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin] as x * cos + swap_halves(x) * [-sin, sin]: three
  // elementwise passes instead of the eight of the textbook form, and no narrow/cat copies.
  auto sizes = x.sizes().vec();
  sizes.back() = 2;
  sizes.push_back(x.size(-1) / 2);
  auto swapped = x.reshape(sizes).flip(-2).reshape(x.sizes());
  return torch::addcmul(x * cos, swapped, sin);
}

namespace {

constexpr EnumName<RopeScaling> kScalingNames[] = {
    {RopeScaling::kNone, "none"},           {RopeScaling::kPi, "pi"},
    {RopeScaling::kNtkOld, "ntk_old"},      {RopeScaling::kNtkAware, "ntk_aware"},
    {RopeScaling::kNtkFixed, "ntk_fixed"},  {RopeScaling::kNtkMixed, "ntk_mixed"},
    {RopeScaling::kDynamicNtk, "dynamic_ntk"}, {RopeScaling::kYarn, "yarn"},
    {RopeScaling::kYarnHf, "yarn_hf"},      {RopeScaling::kLlama3, "llama3"},
    {RopeScaling::kLongRope, "longrope"},
};

// theta_t * f_t with f computed in double per t (std::pow / std::exp, so f_t = 1 exactly when s = 1).
template <typename F>
torch::Tensor scaled(const torch::Tensor& theta, F per_t) {
  auto out = theta.clone();
  auto* p = out.data_ptr<double>();
  for (int64_t t = 0; t < out.numel(); ++t) p[t] *= per_t(t, p[t]);
  return out;
}

constexpr double kPi = 3.14159265358979323846;

// Hugging Face's YaRN (_compute_yarn_parameters): the ramp runs over the pair index t between the
// pairs that turn beta_fast and beta_slow times over the original length, floored and ceiled as
// transformers and llama.cpp round them: pairs below `low` keep theta_t, pairs above `high` take
// theta_t / s, and a linear ramp in t blends the two between.
torch::Tensor yarn_hf_frequencies(const RopeSpec& spec, const torch::Tensor& theta, double s) {
  const double d = double(spec.dims()), base = spec.base, length = double(spec.pre_extension_length());
  const auto correction_pair = [&](double rotations) {  // the pair t (fractional) that turns `rotations` times
    return d * std::log(length / (rotations * 2.0 * kPi)) / (2.0 * std::log(base));
  };
  double low = std::max(0.0, std::floor(correction_pair(spec.yarn_beta)));
  double high = std::min(d - 1.0, std::ceil(correction_pair(spec.yarn_alpha)));
  if (low == high) high += 0.001;  // as transformers: no division by zero
  return scaled(theta, [&](int64_t t, double) {
    const double interpolate = std::clamp((double(t) - low) / (high - low), 0.0, 1.0);
    return 1.0 - interpolate * (1.0 - 1.0 / s);  // interpolate / s + (1 - interpolate), exactly 1 at s = 1
  });
}

// Llama 3 (transformers' _compute_llama3_parameters): wavelengths longer than L_o / low_freq_factor
// are interpolated by s, shorter than L_o / high_freq_factor kept, and those between blended.
torch::Tensor llama3_frequencies(const RopeSpec& spec, const torch::Tensor& theta, double s) {
  const double length = double(spec.pre_extension_length());
  const double low_wavelength = length / spec.low_freq_factor, high_wavelength = length / spec.high_freq_factor;
  return scaled(theta, [&](int64_t, double th) {
    if (th == 0.0) return 1.0;  // a pair that never turns (p-RoPE) stays still
    const double wavelength = 2.0 * kPi / th;
    if (wavelength > low_wavelength) return 1.0 / s;
    if (wavelength < high_wavelength) return 1.0;
    const double smooth = (length / wavelength - spec.low_freq_factor) / (spec.high_freq_factor - spec.low_freq_factor);
    return 1.0 - (1.0 - smooth) * (1.0 - 1.0 / s);  // (1 - smooth) / s + smooth, exactly 1 at s = 1
  });
}

// LongRoPE (transformers' _compute_longrope_parameters): theta_t / lambda_t, with the long factors
// once the window is longer than the original length and the short ones within it.
torch::Tensor longrope_frequencies(const RopeSpec& spec, const torch::Tensor& theta, int64_t context_length) {
  const auto& factors = context_length > spec.pre_extension_length() ? spec.long_factor : spec.short_factor;
  return scaled(theta, [&](int64_t t, double) { return 1.0 / factors[std::size_t(t)]; });
}

// Resonance RoPE (Wang et al. 2024): theta_t -> 2 pi / round(2 pi / theta_t), an integer wavelength.
torch::Tensor resonant(const torch::Tensor& theta) {
  return scaled(theta, [](int64_t, double th) {
    if (th == 0.0) return 1.0;
    return (2.0 * kPi / std::round(2.0 * kPi / th)) / th;
  });
}

}  // namespace

const char* rope_scaling_name(RopeScaling scaling) { return enum_name(kScalingNames, scaling); }

torch::Tensor plain_spectrum(int64_t dims, double base) {
  return rope_inverse_frequencies(dims, base, torch::TensorOptions());
}

double rope_extension_factor(const RopeSpec& spec, int64_t context_length) {
  if (spec.factor > 0) return spec.factor;
  if (spec.scaling == RopeScaling::kDynamicNtk || spec.pre_extension_length() <= 0) return 1.0;
  return std::max(1.0, double(context_length) / double(spec.pre_extension_length()));
}

namespace {

// theta_t after the frequency scaling alone (rope_frequencies then applies resonance).
torch::Tensor scaled_frequencies(const RopeSpec& spec, int64_t context_length) {
  const int64_t d = spec.dims();
  const double dd = double(d);
  const double s = rope_extension_factor(spec, context_length);
  const auto theta = spec.spectrum(d, spec.base);
  // d/(d-2): the base exponent that interpolates the lowest frequency by exactly s. With d = 2 the
  // only frequency is base^0 = 1 whatever the base, so base changes do nothing.
  const auto with_base_factor = [&](double kappa_exponent_base) {
    if (d <= 2) return theta;
    return spec.spectrum(d, spec.base * std::pow(kappa_exponent_base, dd / (dd - 2.0)));
  };
  switch (spec.scaling) {
    case RopeScaling::kNone:
      return theta;
    case RopeScaling::kPi:  // p -> p / s, i.e. theta / s
      return theta / s;
    case RopeScaling::kNtkOld:  // base -> base * s
      return spec.spectrum(d, spec.base * s);
    case RopeScaling::kNtkAware:  // base -> base * s^(d/(d-2))
      return with_base_factor(s);
    case RopeScaling::kNtkFixed:  // theta_m / lambda^m, lambda = s^(2/d), m = t + 1
      return scaled(theta, [&](int64_t t, double) { return std::pow(s, -2.0 * double(t + 1) / dd); });
    case RopeScaling::kNtkMixed: {  // theta_t * exp(-a (t+1)^b), a = ln s / (d/2)^b
      const double b = spec.mixed_exponent;
      const double a = std::log(s) / std::pow(dd / 2.0, b);
      return scaled(theta, [&](int64_t t, double) { return std::exp(-a * std::pow(double(t + 1), b)); });
    }
    case RopeScaling::kDynamicNtk: {  // HF: base * (s len / L - (s - 1))^(d/(d-2)) once len > L
      if (spec.train_length <= 0 || context_length <= spec.train_length) return theta;
      return with_base_factor(s * double(context_length) / double(spec.train_length) - (s - 1.0));
    }
    case RopeScaling::kYarn: {  // [gamma + (1 - gamma)/s] theta, gamma a ramp on r = L theta / (2 pi)
      const double alpha = spec.yarn_alpha, beta = spec.yarn_beta;
      return scaled(theta, [&](int64_t, double th) {
        const double r = double(spec.train_length) * th / (2.0 * kPi);
        const double gamma = std::clamp((r - alpha) / (beta - alpha), 0.0, 1.0);
        return 1.0 - (1.0 - gamma) * (1.0 - 1.0 / s);  // the same, and exactly 1 when s = 1
      });
    }
    case RopeScaling::kYarnHf:
      return yarn_hf_frequencies(spec, theta, s);
    case RopeScaling::kLlama3:
      return llama3_frequencies(spec, theta, s);
    case RopeScaling::kLongRope:
      return longrope_frequencies(spec, theta, context_length);
  }
  return theta;
}

}  // namespace

torch::Tensor rope_frequencies(const RopeSpec& spec, int64_t context_length) {
  const auto theta = scaled_frequencies(spec, context_length);
  return spec.resonance ? resonant(theta) : theta;
}

double rope_logit_temperature(const RopeSpec& spec, int64_t context_length) {
  const double s = rope_extension_factor(spec, context_length);
  if (s <= 1.0) return 1.0;
  if (spec.scaling == RopeScaling::kLongRope) {  // sqrt(1 + ln s / ln L_o) on q and k alike
    return 1.0 + std::log(s) / std::log(double(spec.pre_extension_length()));
  }
  const bool yarn = spec.scaling == RopeScaling::kYarn || spec.scaling == RopeScaling::kYarnHf;
  if (!yarn || !spec.yarn_temperature) return 1.0;
  const double m = 1.0 + 0.1 * std::log(s);  // YaRN's mscale, applied to q and k alike: logits * m^2
  return m * m;
}

LengthUse rope_length_use(const RopeSpec& spec) {
  if (spec.scaling == RopeScaling::kDynamicNtk) return LengthUse::kDynamic;
  if (spec.scaling == RopeScaling::kLongRope) return LengthUse::kPerLength;  // short or long factors
  if (spec.scaling == RopeScaling::kNone || spec.factor > 0) return LengthUse::kNone;
  return LengthUse::kPerLength;
}

std::vector<SchemeParam> rotary_params() {
  return {{"base", 10000.0, "rotation base b in theta_t = b^(-2t/d)"},
          {"rotary_dims", 0, "rotated dimensions per head, the first ones (even); 0 = the whole head"}};
}

std::vector<SchemeParam> rope_scaling_params() {
  const auto knob = [](const char* name, nlohmann::json value, const char* description) {
    return SchemeParam{name, std::move(value), description, /*inference=*/true};
  };
  return {knob("scaling", "none",
               "frequency scaling: none | pi | ntk_old | ntk_aware | ntk_fixed | ntk_mixed | dynamic_ntk | yarn | "
               "yarn_hf | llama3 | longrope"),
          knob("factor", 0.0, "extension factor s; 0 = max(1, evaluated length / train_length) (1 for dynamic_ntk)"),
          knob("mixed_exponent", 0.625, "ntk_mixed: exponent b in exp(-a (t+1)^b)"),
          knob("yarn_alpha", 1.0,
               "yarn: ramp start (rotations per training length below which theta is fully interpolated)"),
          knob("yarn_beta", 32.0, "yarn: ramp end (rotations above which theta is unchanged)"),
          knob("yarn_temperature", true, "yarn, yarn_hf: multiply the logits by (1 + 0.1 ln s)^2"),
          knob("low_freq_factor", 1.0, "llama3: wavelengths above original_length / low_freq_factor are interpolated"),
          knob("high_freq_factor", 4.0, "llama3: wavelengths below original_length / high_freq_factor are kept"),
          knob("original_length", 0, "llama3, yarn_hf, longrope: the pre-extension length L_o; 0 = data.train_length"),
          knob("short_factor", nlohmann::json::array(), "longrope: lambda_t per rotated pair within L_o (d/2 numbers)"),
          knob("long_factor", nlohmann::json::array(), "longrope: lambda_t per rotated pair beyond L_o (d/2 numbers)"),
          knob("factors_file", "", "longrope: a JSON file with short_factor and long_factor (instead of the lists)"),
          knob("resonance", false, "round every wavelength 2 pi / theta_t to an integer (Resonance RoPE), after any scaling")};
}

RopeSpec rope_spec_from_params(const nlohmann::json& p, const ModelShape& shape) {
  RopeSpec spec;
  spec.head_dim = shape.head_dim();
  spec.train_length = shape.train_length;
  spec.base = read_base(p);
  spec.rotary_dims = param<int64_t>(p, "rotary_dims");
  if (spec.rotary_dims < 0 || spec.rotary_dims % 2 != 0 || spec.rotary_dims > spec.head_dim) {
    reject_param("rotary_dims", "must be 0 (the whole head) or an even number <= the head dimension " +
                                    std::to_string(spec.head_dim) + ", got " + std::to_string(spec.rotary_dims));
  }
  if (spec.rotary_dims == 0 && spec.head_dim % 2 != 0) {
    throw UserError("model.d_model / model.n_heads = " + std::to_string(spec.head_dim) +
                    " is odd; rotary schemes rotate pairs and need an even head dimension (or an even "
                    "position.rotary_dims)");
  }
  if (spec.rotary_dims == spec.head_dim) spec.rotary_dims = 0;
  return spec;
}

namespace {

// The scaling parameters into `spec`, checked; they depend on no model shape.
void read_rope_scaling(const nlohmann::json& p, RopeSpec& spec) {
  spec.scaling = parse_enum(kScalingNames, param<std::string>(p, "scaling"), "position.scaling");
  spec.factor = param<double>(p, "factor");
  if (!(spec.factor == 0.0 || spec.factor >= 1.0)) {
    reject_param("factor", "must be 0 (derived from the evaluated length) or >= 1, got " + format_number(spec.factor));
  }
  if (spec.scaling == RopeScaling::kNone && spec.factor != 0.0) {
    reject_param("factor", "has no effect with scaling \"none\" (choose a scaling, e.g. \"pi\" or \"yarn\")");
  }
  spec.mixed_exponent = param<double>(p, "mixed_exponent");
  if (!(spec.mixed_exponent >= 0.0 && spec.mixed_exponent <= 1.0)) {
    reject_param("mixed_exponent", "must be in [0, 1] (0 is PI, 1 is ntk_fixed), got " + format_number(spec.mixed_exponent));
  }
  spec.yarn_alpha = param<double>(p, "yarn_alpha");
  spec.yarn_beta = param<double>(p, "yarn_beta");
  if (!(spec.yarn_alpha >= 0.0)) reject_param("yarn_alpha", "must be >= 0, got " + format_number(spec.yarn_alpha));
  if (!(spec.yarn_beta > spec.yarn_alpha)) {
    reject_param("yarn_beta", "must be > yarn_alpha (" + format_number(spec.yarn_alpha) + "), got " +
                                  format_number(spec.yarn_beta));
  }
  spec.yarn_temperature = param<bool>(p, "yarn_temperature");
  spec.low_freq_factor = param<double>(p, "low_freq_factor");
  spec.high_freq_factor = param<double>(p, "high_freq_factor");
  if (!(spec.low_freq_factor > 0.0)) reject_param("low_freq_factor", "must be > 0, got " + format_number(spec.low_freq_factor));
  if (!(spec.high_freq_factor > spec.low_freq_factor)) {
    reject_param("high_freq_factor", "must be > low_freq_factor (" + format_number(spec.low_freq_factor) + "), got " +
                                         format_number(spec.high_freq_factor));
  }
  spec.original_length = param<int64_t>(p, "original_length");
  if (spec.original_length < 0) reject_param("original_length", "must be >= 0 (0 = data.train_length), got " + std::to_string(spec.original_length));
  const bool has_original = spec.scaling == RopeScaling::kLlama3 || spec.scaling == RopeScaling::kYarnHf ||
                            spec.scaling == RopeScaling::kLongRope;
  if (spec.original_length != 0 && !has_original) reject_param("original_length", "applies only to scaling llama3, yarn_hf or longrope");
  spec.resonance = param<bool>(p, "resonance");
}

// LongRoPE's factor lists, from the params or from factors_file: d/2 positive, non-decreasing
// numbers each (the search of the LongRoPE paper keeps lambda monotone in t).
void read_longrope_factors(const nlohmann::json& p, RopeSpec& spec) {
  nlohmann::json lists = {{"short_factor", p.at("short_factor")}, {"long_factor", p.at("long_factor")}};
  const std::string file = param<std::string>(p, "factors_file");
  const bool inline_lists = !lists["short_factor"].empty() || !lists["long_factor"].empty();
  if (spec.scaling != RopeScaling::kLongRope) {
    if (inline_lists || !file.empty()) reject_param(inline_lists ? "short_factor" : "factors_file", "applies only to scaling \"longrope\"");
    return;
  }
  std::string where = "position.";
  if (!file.empty()) {
    if (inline_lists) reject_param("factors_file", "give the factor lists inline or in a file, not both");
    const auto document = read_json_file(file);
    for (const char* key : {"short_factor", "long_factor"}) {
      if (!document.contains(key)) throw UserError(file + ": no \"" + key + "\" list");
      lists[key] = document[key];
    }
    where = file + ": ";
  }
  const std::size_t pairs = std::size_t(spec.dims() / 2);
  for (const char* key : {"short_factor", "long_factor"}) {
    const auto& list = lists[key];
    const auto fail = [&](const std::string& problem) { throw UserError(where + key + ": " + problem); };
    if (!list.is_array() || list.size() != pairs) {
      fail("expected " + std::to_string(pairs) + " numbers (one per rotated pair), got " +
           (list.is_array() ? std::to_string(list.size()) : list.dump()));
    }
    std::vector<double> factors;
    for (const auto& x : list) {
      if (!x.is_number()) fail("expected numbers, got " + x.dump());
      factors.push_back(x.get<double>());
      if (!(factors.back() > 0.0)) fail("factor " + std::to_string(factors.size() - 1) + " is " + x.dump() + "; every factor must be > 0");
      if (factors.size() > 1 && factors.back() < factors[factors.size() - 2]) {
        fail("factor " + std::to_string(factors.size() - 1) + " (" + x.dump() + ") is below the one before it; LongRoPE's factors are non-decreasing");
      }
    }
    (std::string(key) == "short_factor" ? spec.short_factor : spec.long_factor) = std::move(factors);
  }
}

}  // namespace

RopeSpec scaled_rope_spec(const nlohmann::json& p, const ModelShape& shape) {
  RopeSpec spec = rope_spec_from_params(p, shape);
  read_rope_scaling(p, spec);
  read_longrope_factors(p, spec);
  return spec;
}

SchemeInfo rotary_scheme_info(SchemeInfo info, SpectrumReader read_spectrum) {
  std::vector<SchemeParam> params = rotary_params();
  params.insert(params.end(), info.params.begin(), info.params.end());
  for (auto& p : rope_scaling_params()) params.push_back(std::move(p));
  info.params = std::move(params);
  info.family = kRotaryFamily;
  const auto read = [read_spectrum](const nlohmann::json& p, const ModelShape& shape) {
    RopeSpec spec = scaled_rope_spec(p, shape);
    spec.spectrum = read_spectrum(p, shape);
    return spec;
  };
  info.length_use = [](const nlohmann::json& p) {
    RopeSpec spec;
    read_rope_scaling(p, spec);
    return rope_length_use(spec);
  };
  return define_scheme<Rope, kQueryKeyHook>(info, read, [](const RopeSpec& spec, const ModelShape& shape) {
    return std::make_shared<Rope>(spec, shape.context());
  });
}

Rope::Rope(int64_t head_dim, double base) : Rope(RopeSpec{head_dim, 0, base}, 0) {}

Rope::Rope(const RopeSpec& spec, int64_t context_length)
    : head_dim_(spec.head_dim),
      dims_(spec.dims()),
      inv_freq_(rope_frequencies(spec, context_length)),
      temperature_(rope_logit_temperature(spec, context_length)) {}

std::pair<torch::Tensor, torch::Tensor> Rope::cos_sin(const Positions& positions) {
  const int64_t length = positions.size();
  if (!positions.is_arange) return cos_sin_at(positions.values);
  // Plain 0..T-1 positions: slice a cached table, grown to the longest length seen.
  if (!cos_cache_.defined() || cos_cache_.size(0) < length || cos_cache_.device() != positions.values.device()) {
    std::tie(cos_cache_, sin_cache_) = cos_sin_at(positions.values);
  }
  return {cos_cache_.narrow(0, 0, length), sin_cache_.narrow(0, 0, length)};
}

std::pair<torch::Tensor, torch::Tensor> Rope::cos_sin_at(const torch::Tensor& positions) const {
  auto inv_freq = inv_freq_.to(positions.device());
  auto angles = positions.to(torch::kFloat64).unsqueeze(-1) * inv_freq;  // [..., T, d/2]
  if (positions.dim() == 2) angles = angles.unsqueeze(1);                // [B, 1, T, d/2]: every head
  auto cos = angles.cos(), sin = angles.sin();
  return {torch::cat({cos, cos}, -1).to(torch::kFloat32), torch::cat({-sin, sin}, -1).to(torch::kFloat32)};
}

torch::Tensor Rope::rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
  if (dims_ == head_dim_) return rope_rotate(x, cos, sin);
  return torch::cat({rope_rotate(x.narrow(-1, 0, dims_), cos, sin), x.narrow(-1, dims_, head_dim_ - dims_)}, -1);
}

void Rope::transform_qk(QueryKey& qk, const Positions& positions) {
  auto [cos, sin] = cos_sin(positions);
  qk.q = rotate(qk.q, cos, sin);
  qk.k = rotate(qk.k, cos, sin);
  if (temperature_ != 1.0) qk.q = qk.q * temperature_;  // YaRN: logits * (1 + 0.1 ln s)^2
}

EXTRAP_REGISTER_SCHEME(rope, rotary_scheme_info(
    [] {
      SchemeInfo info;
      info.name = "rope";
      info.description =
          "rotary position embedding on queries and keys (optionally partial, with PI/NTK/YaRN frequency scaling)";
      info.reference = "Su et al. 2021, RoFormer; PI: Chen et al. 2023; NTK: bloc97 / Su 2023; YaRN: Peng et al. 2023";
      return info;
    }(),
    [](const nlohmann::json&, const ModelShape&) { return RotarySpectrum(plain_spectrum); }));

}  // namespace extrap
