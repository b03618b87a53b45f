#pragma once
// Which process of a data-parallel job this is, read from the launcher's environment: torchrun's
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or srun's (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, the first node of SLURM_JOB_NODELIST as the master). Torch-free: the CLI and the
// sweep code read it without LibTorch.
#include <functional>
#include <optional>
#include <string>

namespace extrap {

struct LaunchEnv {
  std::string launcher = "none";  // "torchrun", "slurm" or "none" (one process)
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // where rank 0's store listens (world_size > 1)
  int master_port = 0;
  // torchrun's static rendezvous already runs the store in its agent: every rank connects to it as
  // a client, under the prefix of this restart attempt (as torch.distributed does).
  bool agent_store = false;
  std::string store_prefix;

  bool distributed() const { return world_size > 1; }
  std::string describe() const;  // "rank 1 of 2 (torchrun, master 127.0.0.1:29500)"
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Throws UserError naming the variable for inconsistent or malformed values. torchrun's variables
// win over Slurm's (torchrun inside an allocation); Slurm's count only inside an srun step
// (SLURM_STEP_ID set), since a batch script's own environment describes the allocation, not
// a set of processes.
LaunchEnv read_launch_env(const EnvLookup& lookup);
LaunchEnv read_launch_env();  // this process's environment

// The first host of a Slurm node list: "node[03-05,7],gpu1" -> "node03".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace extrap
