// The launcher environment (torchrun's and srun's variables) and the batch sampler's shares: what
// each process of a data-parallel job believes it is, and which windows it reads.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/error.h"
#include "data/batch_sampler.h"
#include "parallel/launch_env.h"

namespace extrap {
namespace {

LaunchEnv read(const std::map<std::string, std::string>& variables) {
  return read_launch_env([&](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  });
}

std::string error_of(const std::map<std::string, std::string>& variables) {
  try {
    read(variables);
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  const LaunchEnv env = read({{"HOME", "/root"}});
  EXPECT_EQ(env.launcher, "none");
  EXPECT_FALSE(env.distributed());
  // A Slurm batch script without srun describes the allocation, not a set of processes.
  EXPECT_FALSE(read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_ID", "7"}}).distributed());
}

TEST(LaunchEnv, TorchrunVariables) {
  const LaunchEnv env = read({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
                              {"MASTER_PORT", "29500"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                              {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node7");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_TRUE(env.agent_store);
  EXPECT_EQ(env.store_prefix, "/worker/attempt_2");
  EXPECT_EQ(env.describe(), "rank 3 of 4 (torchrun, master node7:29500)");
  EXPECT_FALSE(read({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).distributed());  // no master needed for one
}

TEST(LaunchEnv, SrunVariablesWithTheFirstNodeAsMaster) {
  const std::map<std::string, std::string> step{{"SLURM_STEP_ID", "0"},   {"SLURM_PROCID", "5"},
                                                {"SLURM_NTASKS", "8"},    {"SLURM_LOCALID", "1"},
                                                {"SLURM_JOB_ID", "4242"}, {"SLURM_JOB_NODELIST", "gpu[003-006,9],cpu1"}};
  const LaunchEnv env = read(step);
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "gpu003");
  EXPECT_EQ(env.master_port, 20000 + (4242 * 31 + 0) % 20000);  // the same on every task of the step
  auto with_master = step;
  with_master["MASTER_ADDR"] = "login";
  with_master["MASTER_PORT"] = "1234";
  EXPECT_EQ(read(with_master).master_addr, "login");
  EXPECT_EQ(read(with_master).master_port, 1234);
  // torchrun inside an allocation: torchrun's variables win.
  with_master["RANK"] = "1";
  with_master["WORLD_SIZE"] = "2";
  EXPECT_EQ(read(with_master).launcher, "torchrun");
}

TEST(LaunchEnv, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("node[07-09]"), "node07");
  EXPECT_EQ(first_slurm_host("node[3,5]"), "node3");
  EXPECT_EQ(first_slurm_host("x1,node[3-4]"), "x1");
  EXPECT_THROW(first_slurm_host("node[3"), UserError);
}

TEST(LaunchEnv, InconsistentVariablesNameTheProblem) {
  EXPECT_EQ(error_of({{"RANK", "0"}}), "launcher environment: RANK is set but WORLD_SIZE is not set");
  EXPECT_EQ(error_of({{"WORLD_SIZE", "2"}}), "launcher environment: WORLD_SIZE is set but RANK is not set");
  EXPECT_EQ(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "launcher environment: RANK=2 is not below WORLD_SIZE=2");
  EXPECT_EQ(error_of({{"RANK", "one"}, {"WORLD_SIZE", "2"}}),
            "launcher environment: RANK=one is not an integer in [0, 1048576]");
  EXPECT_EQ(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}),
            "launcher environment: WORLD_SIZE=0 is not an integer in [1, 1048576]");
  EXPECT_EQ(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}),
            "launcher environment: WORLD_SIZE > 1 but MASTER_PORT is not set");
  EXPECT_EQ(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}),
            "launcher environment: MASTER_PORT=70000 is not an integer in [1, 65535]");
  EXPECT_EQ(error_of({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "2"}}),
            "launcher environment: SLURM_PROCID=3 is not below SLURM_NTASKS=2");
  EXPECT_EQ(error_of({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}),
            "launcher environment: SLURM_NTASKS > 1 but SLURM_JOB_NODELIST is not set");
}

TEST(BatchSampler, ProcessesShareTheGlobalBatchDisjointly) {
  const int64_t batch = 12, offsets = 100000;
  const std::vector<int64_t> whole = BatchSampler(9, batch).offsets(5, offsets);
  ASSERT_EQ(whole.size(), std::size_t(batch));
  for (int world : {2, 3, 4}) {
    std::vector<int64_t> joined;
    for (int rank = 0; rank < world; ++rank) {
      const BatchSampler sampler(9, batch, rank, world);
      EXPECT_EQ(sampler.rows_per_process(), batch / world);
      const auto share = sampler.offsets(5, offsets);
      joined.insert(joined.end(), share.begin(), share.end());
    }
    EXPECT_EQ(joined, whole) << world << " processes read other windows than one";
  }
  for (int64_t row = 0; row < batch; ++row) EXPECT_EQ(whole[row], window_offset(9, 5, row, offsets));
}

TEST(BatchSampler, EvaluationBatchesAreDealtInTurn) {
  std::multiset<int> owners;
  for (int64_t batch = 0; batch < 7; ++batch) {
    for (int rank = 0; rank < 3; ++rank) {
      if (BatchSampler::evaluation(rank, 3).owns(batch)) owners.insert(int(batch));
    }
  }
  EXPECT_EQ(owners.size(), 7u);  // each batch exactly once
  EXPECT_EQ(std::set<int>(owners.begin(), owners.end()).size(), 7u);
  EXPECT_TRUE(BatchSampler::evaluation(1, 3).owns(4));
}

TEST(BatchSampler, RefusesABatchThatDoesNotDivide) {
  try {
    BatchSampler(1, 8, 0, 3);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(),
                 "train.batch_size 8 (the global batch) does not divide evenly over 3 processes; use a multiple of 3");
  }
}

}  // namespace
}  // namespace extrap
