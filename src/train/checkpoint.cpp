#include "train/checkpoint.h"

#include <cstdio>

#include "common/error.h"
#include "common/files.h"

namespace extrap {

namespace {
constexpr const char* kCheckpointPrefix = "step_";

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir)) return found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string digits = name.substr(std::min<std::size_t>(name.size(), 5));
    const bool is_step = name.rfind(kCheckpointPrefix, 0) == 0 && !digits.empty() &&
                         digits.find_first_not_of("0123456789") == std::string::npos;
    if (!is_step) continue;  // skips step_*.tmp (unfinished) and anything foreign
    found.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}
}  // namespace

fs::path checkpoint_dir(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "%s%08lld", kCheckpointPrefix, static_cast<long long>(step));
  return run_dir / "checkpoints" / name;
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
  tmp_dir += ".tmp";
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  save_safetensors(tmp_dir / "model.safetensors", model_tensors(model),
                   {{"format", "extrap.model/1"}, {"step", std::to_string(state.step)}});
  save_safetensors(tmp_dir / "optimizer.safetensors", optimizer.state(), {{"format", "extrap.adamw/1"}});
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
  const TensorMap stored = load_safetensors(checkpoint / "model.safetensors");
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : model_tensors(model)) {
    auto it = stored.find(name);
    if (it == stored.end()) throw UserError((checkpoint / "model.safetensors").string() + ": missing tensor " + name);
    if (it->second.sizes() != tensor.sizes()) {
      throw UserError((checkpoint / "model.safetensors").string() + ": tensor " + name + " has shape " +
                      c10::str(it->second.sizes()) + ", the model expects " + c10::str(tensor.sizes()));
    }
    tensor.copy_(it->second);
  }
  if (optimizer) {
    const fs::path file = checkpoint / "optimizer.safetensors";
    optimizer->load_state(load_safetensors(file), file.string());
  }
  TrainingState state;
  state.info = read_json_file(checkpoint / "state.json");
  state.step = state.info.at("step").get<int64_t>();
  return state;
}

bool run_is_done(const fs::path& run_dir) { return fs::exists(run_dir / "DONE"); }

}  // namespace extrap
