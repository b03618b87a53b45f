#pragma once
// Run directories and checkpoints.
//   RUN/config.json         the resolved config
//   RUN/run.json            provenance: tool version, git commit, dataset identity, device, threads
//   RUN/metrics.jsonl       one JSON object per logged step / validation
//   RUN/train.log           the terminal log
//   RUN/checkpoints/step_NNNNNNNN/{model.safetensors, optimizer.safetensors, state.json, config.json}
//   RUN/DONE                written last: the run finished (sweeps skip such runs)
// A checkpoint directory is written under a temporary name and renamed into place, so every
// directory named step_* is complete; the latest is the one with the highest step.
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/gpt.h"
#include "train/adamw.h"

namespace extrap {

namespace fs = std::filesystem;

struct TrainingState {
  int64_t step = 0;  // optimizer steps completed
  nlohmann::json info = nlohmann::json::object();  // extra fields for state.json (losses, timing)
};

// Highest complete checkpoint of a run, if any.
std::optional<fs::path> latest_checkpoint(const fs::path& run_dir);
fs::path checkpoint_dir(const fs::path& run_dir, int64_t step);

// Writes step_NNNNNNNN/ with the weights, the optimizer state, state.json and the resolved config
// (so a checkpoint directory copied elsewhere still describes its model), then prunes to `keep`.
void save_checkpoint(const fs::path& run_dir, GPT& model, const AdamW& optimizer, const TrainingState& state,
                     const nlohmann::json& config, int64_t keep);
// Restores weights (and the optimizer, if given); returns the stored state. The files must carry
// this version's format tags and exactly the model's tensors; anything wrong with them (a corrupt
// or truncated file included) is a UserError naming the file.
TrainingState load_checkpoint(const fs::path& checkpoint, GPT& model, AdamW* optimizer);
// Deletes the step_*.tmp directories that a process killed while saving left behind; returns them.
std::vector<fs::path> remove_unfinished_checkpoints(const fs::path& run_dir);

// Named model tensors as saved: parameters and buffers, by their module path (docs/model.md).
TensorMap model_tensors(GPT& model);

bool run_is_done(const fs::path& run_dir);

}  // namespace extrap
