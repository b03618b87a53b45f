#include "cli/plot.h"

#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/subprocess.h"
#include "common/version.h"

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
  try {
    return run_process(args);
  } catch (const UserError& e) {
    throw UserError(std::string(e.what()) + ": install python3 and python3-matplotlib (scripts/setup.sh)");
  }
}

}  // namespace extrap
