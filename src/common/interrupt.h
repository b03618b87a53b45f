#pragma once
// SIGINT/SIGTERM turned into a flag: during training the first one asks the trainer to checkpoint
// after the current step and exit 128 + signal, and the handler then resets itself (SA_RESETHAND),
// so a second one kills the process at once. A sweep runner keeps the flag for every signal: its
// children get the same signals (same process group, or every process of a Slurm job), checkpoint
// and exit, and the runner waits for them and starts nothing new.
#include <signal.h>

namespace extrap {

// Installs the handlers for its lifetime and puts the previous ones back when destroyed. One at a
// time: the signal received is process-wide.
class InterruptGuard {
 public:
  explicit InterruptGuard(bool second_signal_kills = true);
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // The signal received since construction (the latest, if both); 0 if none.
  int received() const;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

}  // namespace extrap
