#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.h"

namespace extrap {

struct BenchOptions {
  int steps = 10;
  int warmup = 3;
  int64_t batch = 16;
  int64_t eval_length = 8192;  // 0: no evaluation forward
  int64_t attention_block = 64;  // query rows per attention block in training (the model default)
  std::string attention_kernel;  // fused, tiled, blockwise or sdpa; empty: the runtime's choice
  std::string device = "cpu";
  Precision precision = Precision::kFp32;
  std::vector<std::string> overrides;  // --set key=value on the reference config (scheme, attention)
  // > 0: training windows hold documents of this many tokens, the last vocabulary id ending each,
  // told apart as the config's data.reset_positions / data.mask_documents say.
  int64_t document_length = 0;
  double collective_timeout_s = 300;  // under torchrun or srun
};

// Times training steps (train_step, the step `extrap train` runs: clipping at train.grad_clip and the
// schemes' post-update hooks included) of the fixed reference model (d_model 256, 4 layers, 4 heads, length 256,
// batch 16 unless --batch, byte vocabulary, RoPE; the same model as shared/bench/nanogpt_step.py), one eval
// forward at `eval_length`, and a large matmul as the machine's peak. See docs/performance.md.
// With document_length, the training windows are packed documents (bench/documents.sh).
// Under torchrun or srun each process trains `batch` windows per step with the gradients summed
// across the group (weak scaling), then rank 0 repeats the steps alone while the others wait: the
// `data_parallel` section reports tokens/s per process and the scaling efficiency. Only rank 0
// returns the results (the others an empty object).
nlohmann::json run_bench(const BenchOptions& options);

}  // namespace extrap
