// Tests for base/sync.h: Await re-checks its condition whenever
// another thread releases the mutex (no explicit signal), deadlines end waits,
// and far deadlines do not overflow.

#include "base/sync.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

TEST(SyncTest, AwaitWakesWhenAnotherThreadUnlocks) {
  Mutex mu;
  int value = 0;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    MutexLock lock(&mu);
    value = 1;  // no signal: the unlock alone must wake the awaiter
  });
  {
    MutexLock lock(&mu);
    mu.Await([&] { return value == 1; });
    EXPECT_EQ(value, 1);
  }
  setter.join();
}

TEST(SyncTest, AwaitWakesWhenTheChangerWaitsOnACondVar) {
  // The thread that changes the state releases the mutex by waiting on a
  // CondVar, not by unlocking: the awaiter must still see the change.
  Mutex mu;
  CondVar cv;
  bool changed = false;
  bool released = false;
  std::thread changer([&] {
    MutexLock lock(&mu);
    changed = true;
    while (!released) cv.Wait(&mu);
  });
  {
    MutexLock lock(&mu);
    mu.Await([&] { return changed; });
    released = true;
    cv.Signal();
  }
  changer.join();
}

TEST(SyncTest, TwoAwaitersEachSeeTheirOwnCondition) {
  Mutex mu;
  int stage = 0;
  std::atomic<int> done{0};
  std::vector<std::thread> awaiters;
  for (int want : {1, 2}) {
    awaiters.emplace_back([&, want] {
      MutexLock lock(&mu);
      mu.Await([&] { return stage >= want; });
      ++done;
    });
  }
  absl::SleepFor(absl::Milliseconds(20));  // both asleep (not required for correctness)
  for (int s = 1; s <= 2; ++s) {
    MutexLock lock(&mu);
    stage = s;
  }
  for (auto& t : awaiters) t.join();
  EXPECT_EQ(done.load(), 2);
}

TEST(SyncTest, AwaitWithDeadlineGivesUp) {
  Mutex mu;
  MutexLock lock(&mu);
  absl::Time start = absl::Now();
  EXPECT_FALSE(mu.AwaitWithDeadline([] { return false; }, start + absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_TRUE(mu.AwaitWithDeadline([] { return true; }, absl::InfinitePast()));
}

TEST(SyncTest, CondVarTimesOut) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Milliseconds(10)));
  EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::InfinitePast()));
}

TEST(SyncTest, FarDeadlineWaitsForTheSignal) {
  // A deadline centuries away must not overflow the clock arithmetic into an
  // immediate time-out.
  Mutex mu;
  CondVar cv;
  bool flag = false;
  std::thread signaller([&] {
    absl::SleepFor(absl::Milliseconds(20));
    MutexLock lock(&mu);
    flag = true;
    cv.Signal();
  });
  {
    MutexLock lock(&mu);
    while (!flag) {
      EXPECT_FALSE(cv.WaitWithDeadline(&mu, absl::Now() + absl::Hours(24 * 365 * 400)));
    }
  }
  signaller.join();
}

}  // namespace
}  // namespace ipcrpc::internal
