#include "cli/plot.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "common/error.h"
#include "common/version.h"

extern char** environ;

namespace extrap {
namespace {

namespace fs = std::filesystem;

// EXTRAP_PLOT_SCRIPT, else scripts/plot.py of the source tree this binary was built from.
fs::path plot_script() {
  if (const char* script = std::getenv("EXTRAP_PLOT_SCRIPT"); script && *script) {
    if (!fs::is_regular_file(script)) throw UserError(std::string("EXTRAP_PLOT_SCRIPT=") + script + ": no such file");
    return script;
  }
  const fs::path script = fs::path(kSourceDir) / "scripts" / "plot.py";
  if (!fs::is_regular_file(script)) {
    throw UserError(script.string() + ": plot script not found (the source tree moved?); set EXTRAP_PLOT_SCRIPT");
  }
  return script;
}

// Debian's python3-matplotlib is installed for /usr/bin/python3; a python3 found first on PATH (pyenv,
// a virtual environment) usually lacks it. PATH's python3 only where there is no /usr/bin/python3.
std::string python() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

}  // namespace

int run_plot(const PlotOptions& options) {
  std::vector<std::string> args = {python(), plot_script().string(), "--out", options.out};
  if (!options.metric.empty()) args.insert(args.end(), {"--metric", options.metric});
  args.push_back("--");  // an input named like an option stays an input
  args.insert(args.end(), options.inputs.begin(), options.inputs.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  if (const int error = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ)) {
    throw UserError("cannot run " + args[0] + " (" + std::strerror(error) +
                    "): install python3 and python3-matplotlib (scripts/setup.sh)");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace extrap
