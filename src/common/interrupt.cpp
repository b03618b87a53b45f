#include "common/interrupt.h"

#include <atomic>

namespace extrap {
namespace {

std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free, "set from a signal handler");

void on_signal(int signal_number) { g_received = signal_number; }

}  // namespace

InterruptGuard::InterruptGuard(bool second_signal_kills) {
  g_received = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART as std::signal had: a write interrupted by the first signal resumes instead of failing.
  action.sa_flags = (second_signal_kills ? SA_RESETHAND : 0) | SA_RESTART;
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

int InterruptGuard::received() const { return g_received; }

}  // namespace extrap
