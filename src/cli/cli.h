#pragma once

namespace extrap {
// Parses the command line, runs the subcommand and maps errors to exit codes:
// 0 success, 2 bad input (one line on stderr), 1 internal error, 130/143 interrupted.
int run_cli(int argc, char** argv);
}  // namespace extrap
