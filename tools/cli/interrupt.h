// ipcrpc CLI: Ctrl-C (SIGINT) as a request to stop, not the end of the
// process — `bench` then reports what was done, `health --watch` exits with
// the last status it saw.
//
// Thread-safety: stopped() from any thread; one StopOnInterrupt at a time.
//
// Example:
//   StopOnInterrupt interrupt;
//   while (!interrupt.stopped()) { ... }

#ifndef IPCRPC_TOOLS_CLI_INTERRUPT_H_
#define IPCRPC_TOOLS_CLI_INTERRUPT_H_

#include <signal.h>

#include <atomic>

namespace ipcrpc::cli {

// While it lives, SIGINT sets a flag instead of ending the process.
class StopOnInterrupt {
 public:
  StopOnInterrupt();
  ~StopOnInterrupt();
  StopOnInterrupt(const StopOnInterrupt&) = delete;
  StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

  bool stopped() const { return stop_.load(std::memory_order_relaxed); }

 private:
  // Read by the callers' threads, set by the handler on whichever thread
  // takes SIGINT: an atomic (lock-free, so safe in a handler), not a
  // volatile sig_atomic_t, which is only good within one thread.
  static inline std::atomic<bool> stop_{false};
  struct sigaction previous_ = {};
};

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_INTERRUPT_H_
