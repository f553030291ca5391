// ipcrpc tests: a one-shot event (Notify once, wait many), like
// absl::Notification but built on std::mutex, so ThreadSanitizer sees the
// hand-off (Debian's Abseil is not TSan-instrumented: its synchronization is
// invisible to TSan, which then reports false races).
//
// Thread-safety: every member is thread-safe.
//
// Example:
//   ipcrpc::testing::Notification done;
//   std::thread t([&] { ...; done.Notify(); });
//   ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));

#ifndef IPCRPC_TESTS_TESTING_NOTIFICATION_H_
#define IPCRPC_TESTS_TESTING_NOTIFICATION_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/time/time.h"

namespace ipcrpc::testing {

class Notification {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }

  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return notified_; });
  }

  // True if notified within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

}  // namespace ipcrpc::testing

#endif  // IPCRPC_TESTS_TESTING_NOTIFICATION_H_
