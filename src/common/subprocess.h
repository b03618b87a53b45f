#pragma once
// Child processes without a shell: `extrap plot` runs Python, `extrap sweep` runs `extrap train`
// and `extrap eval`, sbatch and srun. Torch-free.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace extrap {

// Starts `args` (args[0] looked up on PATH) with stdout and stderr appended to `log`, or inherited
// when `log` is empty. Throws UserError naming the program when it cannot be started.
pid_t start_process(const std::vector<std::string>& args, const std::filesystem::path& log = {});

// Waits for `pid` (through EINTR: a signal meant for the child must not abandon it) and returns its
// exit status, or 128 + the signal that ended it.
int wait_process(pid_t pid);

// Waits for whichever child ends first: its pid and status as wait_process returns them.
std::pair<pid_t, int> wait_any_process();

// start_process and wait_process.
int run_process(const std::vector<std::string>& args, const std::filesystem::path& log = {});

// What `args` prints on stdout (stderr inherited) and its status, as run_process returns it.
struct ProcessOutput {
  int status = 0;
  std::string out;
};
ProcessOutput capture_process(const std::vector<std::string>& args);

// Whether `program` is an executable file on PATH (or a path to one).
bool on_path(const std::string& program);

// The absolute path of the running executable (/proc/self/exe), for the commands it writes.
std::filesystem::path self_executable();

}  // namespace extrap
