#pragma once
// RoPE and its frequency-scaling family (PI, NTK variants, dynamic NTK, YaRN), shared with the other
// rotary schemes (rerope.cpp, xpos.cpp) and with the tests. A new rotary spectrum (which theta_t
// the pairs turn at) is one small file: a RotarySpectrum plus rotary_scheme_info() (see
// docs/extending.md); the scaling treatments then apply to it unchanged.
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "position/scheme.h"

namespace extrap {

// theta_t = base^(-2t/dims), t = 0..dims/2-1, float64.
torch::Tensor rope_inverse_frequencies(int64_t dims, double base, const torch::TensorOptions& options);
// Rotates x[..., T, dims] with the full-width tables of Rope::cos_sin: [cos, cos] and [-sin, sin].
torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// How the rotation frequencies change with the extension factor s (spec §3.8, §3.9, §3.14; the
// Hugging Face definitions of llama3, yarn (as yarn_hf) and longrope, anchors-2026.md §1c).
enum class RopeScaling { kNone, kPi, kNtkOld, kNtkAware, kNtkFixed, kNtkMixed, kDynamicNtk, kYarn, kYarnHf, kLlama3, kLongRope };

const char* rope_scaling_name(RopeScaling scaling);

// theta_t for t = 0..dims/2-1 at a given base, float64 on the CPU. The plain spectrum is
// rope_inverse_frequencies; scalings that change the base (NTK) call the spectrum with the new base.
using RotarySpectrum = std::function<torch::Tensor(int64_t dims, double base)>;
torch::Tensor plain_spectrum(int64_t dims, double base);

// Everything that fixes a RoPE variant's frequencies, except the length it is built for.
struct RopeSpec {
  int64_t head_dim = 0;
  int64_t rotary_dims = 0;  // rotated dimensions per head (the first ones); 0: all of head_dim
  double base = 10000.0;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 0.0;  // s; 0: derived per built length (max(1, context / train_length); 1 for dynamic_ntk)
  double mixed_exponent = 0.625;  // b of NTK-mixed
  double yarn_alpha = 1.0, yarn_beta = 32.0;
  bool yarn_temperature = true;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  std::vector<double> short_factor, long_factor;         // longrope: one per rotated pair
  int64_t original_length = 0;  // llama3, yarn_hf, longrope: the pre-extension length; 0 = train_length
  bool resonance = false;       // round every wavelength 2 pi / theta_t to an integer, after any scaling
  int64_t train_length = 0;
  RotarySpectrum spectrum = plain_spectrum;
  int64_t dims() const { return rotary_dims > 0 ? rotary_dims : head_dim; }
  int64_t pre_extension_length() const { return original_length > 0 ? original_length : train_length; }
};

// The extension factor s the scaling uses when the model is built for `context_length` tokens.
double rope_extension_factor(const RopeSpec& spec, int64_t context_length);
// theta_t after scaling, float64 [dims/2] on the CPU. With s = 1 every scaling returns exactly the
// plain frequencies (and dynamic_ntk does whenever context_length <= train_length).
torch::Tensor rope_frequencies(const RopeSpec& spec, int64_t context_length);
// The factor multiplying the logits (applied to the queries): YaRN's (1 + 0.1 ln s)^2 (yarn, yarn_hf)
// when yarn_temperature is on and s > 1; LongRoPE's (1 + ln s / ln L_o) (its sqrt scales q and k in
// Hugging Face) when s > 1; 1 otherwise.
double rope_logit_temperature(const RopeSpec& spec, int64_t context_length);

// How a model built with this spec depends on the evaluated length (SchemeInfo::length_use).
LengthUse rope_length_use(const RopeSpec& spec);

// The parameters every rotary scheme has (trained: base, rotary_dims) and the frequency-scaling
// ones (inference-time: scaling, factor, mixed_exponent, yarn_*).
std::vector<SchemeParam> rotary_params();
std::vector<SchemeParam> rope_scaling_params();
// Reads and checks `base` and `rotary_dims`; the head dimension must be even when the whole head
// rotates.
RopeSpec rope_spec_from_params(const nlohmann::json& params, const ModelShape& shape);
// rope_spec_from_params plus the scaling parameters.
RopeSpec scaled_rope_spec(const nlohmann::json& params, const ModelShape& shape);

// A rotary scheme with its own spectrum: `info` gives name, description, reference and the
// spectrum's own params; `read_spectrum` checks them (reject_param) and returns the spectrum. The
// result has the rotary and scaling params too, family "rotary", and builds a Rope.
using SpectrumReader = std::function<RotarySpectrum(const nlohmann::json& params, const ModelShape& shape)>;
SchemeInfo rotary_scheme_info(SchemeInfo info, SpectrumReader read_spectrum);
inline constexpr const char* kRotaryFamily = "rotary";

class Rope : public PositionScheme {
 public:
  Rope(int64_t head_dim, double base);  // plain RoPE over the whole head
  Rope(const RopeSpec& spec, int64_t context_length);
  void transform_qk(QueryKey& qk, const Positions& positions) override;
  // float32 tables [T, dims] for these positions: [cos, cos] and [-sin, sin] over the two halves of
  // the rotated dimensions; cached for 0..T-1. Per-row positions give [B, 1, T, dims], which
  // broadcast over the heads of [B, H, T, head_dim].
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const Positions& positions);
  // The same tables for any float64 positions [T] or [B, T] (no cache).
  std::pair<torch::Tensor, torch::Tensor> cos_sin_at(const torch::Tensor& positions) const;
  // Rotates the first dims() dimensions of x [..., T, head_dim] with tables from cos_sin; the rest pass through.
  torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const;
  const torch::Tensor& inverse_frequencies() const { return inv_freq_; }  // float64 [dims/2], CPU
  double logit_temperature() const { return temperature_; }
  int64_t dims() const { return dims_; }

 private:
  int64_t head_dim_, dims_;
  torch::Tensor inv_freq_;
  double temperature_ = 1.0;
  torch::Tensor cos_cache_, sin_cache_;
};

}  // namespace extrap
