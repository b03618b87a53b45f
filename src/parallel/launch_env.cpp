#include "parallel/launch_env.h"

#include <cstdlib>

#include "common/error.h"

namespace extrap {
namespace {

// The integer value of `name`, or nullopt when it is unset; one clear line when it is malformed.
std::optional<long> integer_variable(const EnvLookup& lookup, const std::string& name, long low, long high) {
  const auto text = lookup(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || value < low || value > high) {
    throw UserError("launcher environment: " + name + "=" + *text + " is not an integer in [" + std::to_string(low) +
                    ", " + std::to_string(high) + "]");
  }
  return value;
}

long required_integer(const EnvLookup& lookup, const std::string& name, const std::string& because, long low,
                      long high) {
  const auto value = integer_variable(lookup, name, low, high);
  if (!value) throw UserError("launcher environment: " + because + " but " + name + " is not set");
  return *value;
}

constexpr long kMaxProcesses = 1 << 20;

void check_rank(const LaunchEnv& env, const std::string& rank_name, const std::string& world_name) {
  if (env.rank >= env.world_size) {
    throw UserError("launcher environment: " + rank_name + "=" + std::to_string(env.rank) + " is not below " +
                    world_name + "=" + std::to_string(env.world_size));
  }
}

LaunchEnv torchrun_env(const EnvLookup& lookup) {
  LaunchEnv env;
  env.launcher = "torchrun";
  const auto rank = integer_variable(lookup, "RANK", 0, kMaxProcesses);
  const auto world = integer_variable(lookup, "WORLD_SIZE", 1, kMaxProcesses);
  if (!rank) throw UserError("launcher environment: WORLD_SIZE is set but RANK is not set");
  if (!world) throw UserError("launcher environment: RANK is set but WORLD_SIZE is not set");
  env.rank = int(*rank);
  env.world_size = int(*world);
  check_rank(env, "RANK", "WORLD_SIZE");
  env.local_rank = int(integer_variable(lookup, "LOCAL_RANK", 0, kMaxProcesses).value_or(0));
  if (env.world_size > 1) {
    const auto addr = lookup("MASTER_ADDR");
    if (!addr || addr->empty()) throw UserError("launcher environment: WORLD_SIZE > 1 but MASTER_ADDR is not set");
    env.master_addr = *addr;
    env.master_port = int(required_integer(lookup, "MASTER_PORT", "WORLD_SIZE > 1", 1, 65535));
  }
  env.agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  if (env.agent_store) {
    env.store_prefix = "/worker/attempt_" + std::to_string(integer_variable(lookup, "TORCHELASTIC_RESTART_COUNT", 0,
                                                                            kMaxProcesses).value_or(0));
  }
  return env;
}

LaunchEnv slurm_env(const EnvLookup& lookup) {
  LaunchEnv env;
  env.launcher = "slurm";
  env.world_size = int(required_integer(lookup, "SLURM_NTASKS", "SLURM_STEP_ID is set (an srun step)", 1, kMaxProcesses));
  env.rank = int(required_integer(lookup, "SLURM_PROCID", "SLURM_STEP_ID is set (an srun step)", 0, kMaxProcesses));
  check_rank(env, "SLURM_PROCID", "SLURM_NTASKS");
  env.local_rank = int(integer_variable(lookup, "SLURM_LOCALID", 0, kMaxProcesses).value_or(0));
  if (env.world_size == 1) return env;
  if (const auto addr = lookup("MASTER_ADDR"); addr && !addr->empty()) {
    env.master_addr = *addr;
  } else {
    const auto nodes = lookup("SLURM_STEP_NODELIST") ? lookup("SLURM_STEP_NODELIST") : lookup("SLURM_JOB_NODELIST");
    if (!nodes || nodes->empty()) throw UserError("launcher environment: SLURM_NTASKS > 1 but SLURM_JOB_NODELIST is not set");
    env.master_addr = first_slurm_host(*nodes);
  }
  // Every task of the step derives the same port from the job and step ids, unless MASTER_PORT says.
  if (const auto port = integer_variable(lookup, "MASTER_PORT", 1, 65535)) {
    env.master_port = int(*port);
  } else {
    const long job = required_integer(lookup, "SLURM_JOB_ID", "SLURM_NTASKS > 1 and MASTER_PORT is not set", 0, 1L << 40);
    const long step = integer_variable(lookup, "SLURM_STEP_ID", 0, 1L << 40).value_or(0);
    env.master_port = int(20000 + (job * 31 + step) % 20000);
  }
  return env;
}

}  // namespace

std::string LaunchEnv::describe() const {
  if (!distributed()) return "one process";
  return "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " (" + launcher + ", master " +
         master_addr + ":" + std::to_string(master_port) + ")";
}

LaunchEnv read_launch_env(const EnvLookup& lookup) {
  if (lookup("RANK") || lookup("WORLD_SIZE")) return torchrun_env(lookup);
  if (lookup("SLURM_STEP_ID") && lookup("SLURM_PROCID")) return slurm_env(lookup);
  return {};
}

LaunchEnv read_launch_env() {
  return read_launch_env([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

std::string first_slurm_host(const std::string& nodelist) {
  const auto comma = nodelist.find(',');
  const auto bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return nodelist.substr(0, comma);  // "gpu1,gpu2" or "gpu1"
  }
  // "node[03-05,7]": the prefix and the first number of the range, its zero padding kept.
  const auto end = nodelist.find_first_of("-,]", bracket + 1);
  if (end == std::string::npos) throw UserError("launcher environment: SLURM_JOB_NODELIST=" + nodelist + " is malformed");
  return nodelist.substr(0, bracket) + nodelist.substr(bracket + 1, end - bracket - 1);
}

}  // namespace extrap
