// Tests for ThreadPool: every task runs, one per idle worker at once, the
// queue bound, and the destructor draining what is queued.

#include "runtime/internal/thread_pool.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

TEST(ThreadPoolTest, RunsEveryTask) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(/*max_queued=*/10000);
    ASSERT_TRUE(pool.Start(4).ok());
    for (int i = 0; i < 5000; ++i) {
      ASSERT_TRUE(pool.Schedule([&ran] { ran.fetch_add(1); }));
    }
  }  // the destructor runs what is still queued
  EXPECT_EQ(ran.load(), 5000);
}

TEST(ThreadPoolTest, TasksScheduledTogetherRunAtOnce) {
  // Each task waits until all have started: only if every scheduled task
  // woke its own worker do they finish.
  constexpr int kThreads = 8;
  ThreadPool pool(/*max_queued=*/kThreads);
  ASSERT_TRUE(pool.Start(kThreads).ok());
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> started{0};
    absl::Notification all_started;
    std::atomic<int> finished{0};
    for (int i = 0; i < kThreads; ++i) {
      ASSERT_TRUE(pool.Schedule([&] {
        if (started.fetch_add(1) + 1 == kThreads) all_started.Notify();
        EXPECT_TRUE(all_started.WaitForNotificationWithTimeout(absl::Seconds(30)));
        finished.fetch_add(1);
      }));
    }
    ASSERT_TRUE(all_started.WaitForNotificationWithTimeout(absl::Seconds(30))) << "round " << round;
    while (finished.load() < kThreads) std::this_thread::yield();
  }
}

long VoluntaryContextSwitches() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_nvcsw;
}

TEST(ThreadPoolTest, ATaskWakesOneIdleWorkerNotAll) {
  // 32 idle workers, tasks scheduled one at a time: each should cost a wake-up
  // or two, not one per idle worker (the pool once woke them all on every
  // Schedule, and each woken worker went back to sleep: ~32 switches a task).
  constexpr int kThreads = 32;
  constexpr int kTasks = 500;
  ThreadPool pool(/*max_queued=*/kTasks);
  ASSERT_TRUE(pool.Start(kThreads).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // all idle
  const long before = VoluntaryContextSwitches();
  for (int i = 0; i < kTasks; ++i) {
    absl::Notification done;
    ASSERT_TRUE(pool.Schedule([&done] { done.Notify(); }));
    done.WaitForNotification();
  }
  const long switches = VoluntaryContextSwitches() - before;
  RecordProperty("voluntary_context_switches", static_cast<int>(switches));
  EXPECT_LT(switches, 8 * kTasks) << switches << " voluntary context switches for " << kTasks
                                  << " tasks";
}

TEST(ThreadPoolTest, RefusesBeyondTheQueueBound) {
  ThreadPool pool(/*max_queued=*/2);
  ASSERT_TRUE(pool.Start(1).ok());
  absl::Notification release;
  absl::Notification busy;
  ASSERT_TRUE(pool.Schedule([&] {
    busy.Notify();
    release.WaitForNotification();
  }));
  busy.WaitForNotification();  // the only worker is taken; the queue is empty
  EXPECT_TRUE(pool.Schedule([] {}));
  EXPECT_TRUE(pool.Schedule([] {}));
  EXPECT_FALSE(pool.Schedule([] {}));  // two already wait
  release.Notify();
}

}  // namespace
}  // namespace ipcrpc::internal
