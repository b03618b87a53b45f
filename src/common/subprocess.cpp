#include "common/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "common/error.h"

extern char** environ;

namespace extrap {
namespace {

namespace fs = std::filesystem;

// posix_spawn's file actions, freed on every path out.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

pid_t spawn(const std::vector<std::string>& args, posix_spawn_file_actions_t* actions) {
  std::vector<std::string> copies = args;
  std::vector<char*> argv;
  for (auto& arg : copies) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (const int error = posix_spawnp(&pid, argv[0], actions, nullptr, argv.data(), environ)) {
    throw UserError("cannot run " + args[0] + " (" + std::strerror(error) + ")");
  }
  return pid;
}

// waitpid for `pid` (-1: any child), through EINTR.
std::pair<pid_t, int> wait_for(pid_t pid) {
  int status = 0;
  pid_t ended = 0;
  while ((ended = waitpid(pid, &status, 0)) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  return {ended, WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status)};
}

}  // namespace

pid_t start_process(const std::vector<std::string>& args, const fs::path& log) {
  FileActions actions;
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(actions.get(), STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(actions.get(), STDOUT_FILENO, STDERR_FILENO);
  }
  return spawn(args, actions.get());
}

int wait_process(pid_t pid) { return wait_for(pid).second; }

std::pair<pid_t, int> wait_any_process() { return wait_for(-1); }

int run_process(const std::vector<std::string>& args, const fs::path& log) {
  return wait_process(start_process(args, log));
}

ProcessOutput capture_process(const std::vector<std::string>& args) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  FileActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), pipe_ends[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(actions.get(), pipe_ends[0]);
  pid_t pid = 0;
  try {
    pid = spawn(args, actions.get());
  } catch (...) {
    close(pipe_ends[0]);
    close(pipe_ends[1]);
    throw;
  }
  close(pipe_ends[1]);
  ProcessOutput result;
  char buffer[4096];
  for (ssize_t got; (got = read(pipe_ends[0], buffer, sizeof buffer)) != 0;) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) break;
    result.out.append(buffer, std::size_t(got));
  }
  close(pipe_ends[0]);
  result.status = wait_process(pid);
  return result;
}

bool on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::stringstream directories(path ? path : "");
  for (std::string directory; std::getline(directories, directory, ':');) {
    const fs::path candidate = fs::path(directory.empty() ? "." : directory) / program;
    if (fs::is_regular_file(candidate) && ::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

fs::path self_executable() { return fs::read_symlink("/proc/self/exe"); }

}  // namespace extrap
