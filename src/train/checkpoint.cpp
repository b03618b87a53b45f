#include "train/checkpoint.h"

#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/files.h"

namespace extrap {

namespace {
constexpr const char* kCheckpointPrefix = "step_";
constexpr const char* kUnfinishedSuffix = ".tmp";
// "<family>/<version>" in each file's safetensors metadata; a reader accepts its own version only.
constexpr const char* kModelFormat = "extrap.model/1";
constexpr const char* kOptimizerFormat = "extrap.adamw/1";

bool is_number(const std::string& digits) {
  return !digits.empty() && digits.size() <= 18 && digits.find_first_not_of("0123456789") == std::string::npos;
}

// The step of a checkpoint directory named step_<digits><suffix>, if `name` is one.
std::optional<int64_t> checkpoint_step(const std::string& name, const std::string& suffix) {
  const std::size_t prefix = std::strlen(kCheckpointPrefix);
  if (name.size() <= prefix + suffix.size() || name.rfind(kCheckpointPrefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix, name.size() - prefix - suffix.size());
  if (!is_number(digits)) return std::nullopt;
  return std::stoll(digits);
}

// Directories under RUN/checkpoints named step_<digits><suffix>, by step.
std::vector<std::pair<int64_t, fs::path>> checkpoints_named(const fs::path& run_dir, const std::string& suffix) {
  std::vector<std::pair<int64_t, fs::path>> found;
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir)) return found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (auto step = checkpoint_step(entry.path().filename().string(), suffix)) found.emplace_back(*step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Every step_* directory without a suffix is complete (written under step_*.tmp, then renamed).
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& run_dir) {
  return checkpoints_named(run_dir, "");
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// Runs `load`, which reads `file`; whatever goes wrong (a LibTorch or JSON error on a corrupt
// file included) becomes one line naming the file.
template <class Load>
void loading(const fs::path& file, Load&& load) {
  try {
    load();
  } catch (const UserError&) {
    throw;
  } catch (const c10::Error& e) {
    throw UserError(file.string() + ": cannot load: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw UserError(file.string() + ": cannot load: " + first_line(e.what()));
  }
}

// Throws unless `metadata` carries the format tag `expected` ("family/version").
void check_format(const std::map<std::string, std::string>& metadata, const std::string& expected,
                  const fs::path& file) {
  const auto it = metadata.find("format");
  if (it == metadata.end()) {
    throw UserError(file.string() + ": no format tag in its metadata (expected " + expected +
                    "); not an extrap checkpoint");
  }
  const std::string& tag = it->second;
  if (tag == expected) return;
  const std::size_t slash = expected.find('/');
  const std::string version = tag.substr(std::min(tag.size(), slash + 1));
  const bool same_family = tag.compare(0, slash + 1, expected, 0, slash + 1) == 0;
  if (same_family && is_number(version) && std::stoll(version) > std::stoll(expected.substr(slash + 1))) {
    throw UserError(file.string() + ": " + tag + ": written by a newer extrap (this one reads " + expected + ")");
  }
  throw UserError(file.string() + ": unknown format " + tag + " (this extrap reads " + expected + ")");
}

TensorMap load_tagged(const fs::path& file, const std::string& format) {
  std::map<std::string, std::string> metadata;
  TensorMap tensors = load_safetensors(file, &metadata);
  check_format(metadata, format, file);
  return tensors;
}

// Copies the stored tensors into the model; both must hold exactly the same names and shapes.
void restore_weights(const TensorMap& stored, GPT& model, const fs::path& file) {
  TensorMap tensors = model_tensors(model);
  for (const auto& [name, tensor] : stored) {
    if (tensors.count(name) == 0) {
      throw UserError(file.string() + ": tensor " + name + " is not part of this model (a checkpoint of another "
                      "config?)");
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : tensors) {
    auto it = stored.find(name);
    if (it == stored.end()) throw UserError(file.string() + ": missing tensor " + name);
    if (it->second.sizes() != tensor.sizes()) {
      throw UserError(file.string() + ": tensor " + name + " has shape " + c10::str(it->second.sizes()) +
                      ", the model expects " + c10::str(tensor.sizes()));
    }
    tensor.copy_(it->second);
  }
}
}  // namespace

fs::path checkpoint_dir(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "%s%08lld", kCheckpointPrefix, static_cast<long long>(step));
  return run_dir / "checkpoints" / name;
}

std::vector<fs::path> remove_unfinished_checkpoints(const fs::path& run_dir) {
  std::vector<fs::path> removed;
  for (const auto& [step, path] : checkpoints_named(run_dir, kUnfinishedSuffix)) {
    fs::remove_all(path);
    removed.push_back(path);
  }
  return removed;
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  auto found = complete_checkpoints(run_dir);
  if (found.empty()) return std::nullopt;
  return found.back().second;
}

TensorMap model_tensors(GPT& model) {
  TensorMap tensors;
  for (const auto& item : model->named_parameters()) tensors[item.key()] = item.value();
  for (const auto& item : model->named_buffers()) tensors[item.key()] = item.value();
  return tensors;
}

void save_checkpoint(const fs::path& run_dir, GPT& model, const AdamW& optimizer, const TrainingState& state,
                     const nlohmann::json& config, int64_t keep) {
  const fs::path final_dir = checkpoint_dir(run_dir, state.step);
  fs::path tmp_dir = final_dir;
  tmp_dir += kUnfinishedSuffix;
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  save_safetensors(tmp_dir / "model.safetensors", model_tensors(model),
                   {{"format", kModelFormat}, {"step", std::to_string(state.step)}});
  save_safetensors(tmp_dir / "optimizer.safetensors", optimizer.state(), {{"format", kOptimizerFormat}});
  nlohmann::json info = state.info;
  info["step"] = state.step;
  write_json_atomic(tmp_dir / "state.json", info);
  write_json_atomic(tmp_dir / "config.json", config);
  fs::remove_all(final_dir);  // only when re-saving the same step (e.g. interrupted right after a save)
  rename_durable(tmp_dir, final_dir);
  // Prune old checkpoints only after the new one is in place.
  auto all = complete_checkpoints(run_dir);
  for (std::size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i].second);
}

TrainingState load_checkpoint(const fs::path& checkpoint, GPT& model, AdamW* optimizer) {
  const fs::path weights = checkpoint / "model.safetensors";
  loading(weights, [&] { restore_weights(load_tagged(weights, kModelFormat), model, weights); });
  if (optimizer) {
    const fs::path file = checkpoint / "optimizer.safetensors";
    loading(file, [&] { optimizer->load_state(load_tagged(file, kOptimizerFormat), file.string()); });
  }
  TrainingState state;
  const fs::path state_file = checkpoint / "state.json";
  loading(state_file, [&] {
    state.info = read_json_file(state_file);
    state.step = state.info.at("step").get<int64_t>();
  });
  return state;
}

bool run_is_done(const fs::path& run_dir) { return fs::exists(run_dir / "DONE"); }

}  // namespace extrap
