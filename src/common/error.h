#pragma once
#include <stdexcept>
#include <string>

namespace extrap {

// An error caused by the user's input (config, data, flags, run directory). main() prints its
// message as one line and exits with status 2; anything else is an internal error.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace extrap

namespace extrap {

// Raised after a SIGINT/SIGTERM has been handled (checkpoint written); main() exits 128 + signal.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int signal_number)
      : std::runtime_error("interrupted"), signal(signal_number) {}
  int signal;
};

}  // namespace extrap
