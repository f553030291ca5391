#include "tools/cli/interrupt.h"

#include <cerrno>

namespace ipcrpc::cli {

StopOnInterrupt::StopOnInterrupt() {
  stop_.store(false, std::memory_order_relaxed);
  struct sigaction action = {};
  action.sa_handler = [](int) {
    const int saved_errno = errno;
    stop_.store(true, std::memory_order_relaxed);
    errno = saved_errno;
  };
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &previous_);
}

StopOnInterrupt::~StopOnInterrupt() { ::sigaction(SIGINT, &previous_, nullptr); }

}  // namespace ipcrpc::cli
