// Tests of the reading role's protocol (reading_role.h) with scripted
// threads and explicit times, and of the watchdog with generous bounds: no
// assertion depends on how fast anything runs.

#include "runtime/internal/reading_role.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

constexpr auto kPatience = std::chrono::seconds(20);  // "never" on any machine

// The threads of one fake connection. A thread holding the role "reads"
// until the test queues a call for it; it then releases the role (at the
// call's time) and runs a handler that blocks until the test finishes it.
class FakeConnection {
 public:
  explicit FakeConnection(ThreadStarter start_thread = StartThread)
      : role_([this](bool first) { Body(first); }, std::move(start_thread)) {}
  ~FakeConnection() {
    End();
    role_.Join();
  }

  ReadingRole& role() { return role_; }

  // Waits until thread `id` holds the role (and is reading).
  void AwaitHolder(int id) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, kPatience, [&] { return holder_ == id; }))
        << "thread " << id << " never held the role (holder " << holder_ << ")";
  }
  // The holder runs a handler inline, having released the role at `at`;
  // returns once the handler is running (the role is orphaned).
  int RunInlineHandler(absl::Time at) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, kPatience, [&] { return holder_ >= 0; }));
    const int id = holder_;
    pending_.push_back(at);
    cv_.notify_all();
    EXPECT_TRUE(cv_.wait_for(lock, kPatience, [&] { return in_handler_.count(id) > 0; }));
    return id;
  }
  // Lets thread `id`'s handler return.
  void FinishHandler(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    finish_.insert(id);
    cv_.notify_all();
  }
  // The connection ends: the reader stops, the role closes.
  void End() {
    role_.Close();
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    for (int id : in_handler_) finish_.insert(id);
    cv_.notify_all();
  }
  void AwaitExited(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, kPatience, [&] { return exited_ == n; }));
  }
  void AwaitStandbys(int n) {
    auto until = std::chrono::steady_clock::now() + kPatience;
    while (role_.standbys() != n) {
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "standbys: " << role_.standbys();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  int threads_started() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_id_;
  }

 private:
  void Body(bool first) {
    int id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      id = next_id_++;
    }
    if (!first && !role_.Acquire()) return Exit();
    for (;;) {
      absl::Time released_at;
      {
        std::unique_lock<std::mutex> lock(mu_);
        holder_ = id;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !pending_.empty() || ended_; });
        holder_ = -1;
        if (pending_.empty()) {
          lock.unlock();
          return Exit();  // the read failed: the connection ended
        }
        released_at = pending_.front();
        pending_.pop_front();
      }
      role_.ReleaseForInlineHandler(released_at);
      {
        std::unique_lock<std::mutex> lock(mu_);
        in_handler_.insert(id);
        cv_.notify_all();
        cv_.wait(lock, [&] { return finish_.count(id) > 0; });
        finish_.erase(id);
        in_handler_.erase(id);
      }
      if (!role_.Acquire()) return Exit();
    }
  }
  void Exit() {
    std::lock_guard<std::mutex> lock(mu_);
    ++exited_;
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int next_id_ = 0;
  int holder_ = -1;
  int exited_ = 0;
  bool ended_ = false;
  std::deque<absl::Time> pending_;
  std::set<int> in_handler_;
  std::set<int> finish_;
  ReadingRole role_;  // last: its threads use the members above
};

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

TEST(ReadingRoleTest, QuickHandlerTakesTheRoleBackWithoutAHandOff) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  ASSERT_EQ(c.RunInlineHandler(kT0), 0);
  c.FinishHandler(0);
  c.AwaitHolder(0);  // nobody else was woken: thread 0 reads again
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 + absl::Hours(1)));
  EXPECT_EQ(c.threads_started(), 1);
}

TEST(ReadingRoleTest, NoHandOffBeforeTheThreshold) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  // The watchdog asks for roles released before kT0 - 1 ms: not this one.
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 - absl::Milliseconds(1)));
  EXPECT_EQ(c.threads_started(), 1);
  c.FinishHandler(0);
  c.AwaitHolder(0);
}

TEST(ReadingRoleTest, HandOffAfterTheThresholdStartsAStandbyThatReads) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  EXPECT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  c.AwaitHolder(1);  // a new thread reads while thread 0's handler runs
  EXPECT_EQ(c.threads_started(), 2);
  // Handed off once: asking again changes nothing.
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 + absl::Hours(1)));
  EXPECT_EQ(c.threads_started(), 2);
  c.FinishHandler(0);
  c.AwaitStandbys(1);  // thread 1 reads: thread 0 waits as a standby
}

// A thread the system refuses (RLIMIT_NPROC, pids.max) is a status, not
// std::terminate.
TEST(ReadingRoleTest, AFirstThreadThatCannotStartIsAStatus) {
  FakeConnection c([](std::function<void()>) -> absl::StatusOr<std::thread> {
    return absl::ResourceExhaustedError("no threads");
  });
  absl::Status started = c.role().Start();
  EXPECT_TRUE(absl::IsResourceExhausted(started)) << started;
  c.role().Close();
  EXPECT_TRUE(c.role().finished());
  EXPECT_EQ(c.threads_started(), 0);
}

TEST(ReadingRoleTest, AStandbyThatCannotStartLeavesTheRoleOrphanedForTheNextTick) {
  std::atomic<bool> refuse{false};
  FakeConnection c([&refuse](std::function<void()> body) -> absl::StatusOr<std::thread> {
    if (refuse) return absl::ResourceExhaustedError("no threads");
    return StartThread(std::move(body));
  });
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  refuse = true;
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  EXPECT_EQ(c.threads_started(), 1);
  refuse = false;
  EXPECT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(2)));
  c.AwaitHolder(1);
  c.FinishHandler(0);
  c.AwaitStandbys(1);
}

TEST(ReadingRoleTest, HandOffWakesAnIdleStandbyInsteadOfStartingAThread) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  ASSERT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  c.AwaitHolder(1);
  c.FinishHandler(0);
  c.AwaitStandbys(1);
  // Thread 1 now runs a handler inline; thread 0 is the standby.
  const absl::Time t1 = kT0 + absl::Seconds(1);
  ASSERT_EQ(c.RunInlineHandler(t1), 1);
  EXPECT_TRUE(c.role().HandOffIfOrphaned(t1 + absl::Milliseconds(1)));
  c.AwaitHolder(0);
  EXPECT_EQ(c.threads_started(), 2);
  c.FinishHandler(1);
  c.AwaitStandbys(1);
}

TEST(ReadingRoleTest, HandlerThreadTakesTheRoleBackIfTheStandbyReleasedIt) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  ASSERT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  c.AwaitHolder(1);
  // Thread 1 also runs a handler inline before thread 0's returns.
  ASSERT_EQ(c.RunInlineHandler(kT0 + absl::Seconds(1)), 1);
  c.FinishHandler(0);
  c.AwaitHolder(0);  // the role was free: thread 0 took it back itself
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 + absl::Hours(1)));
  c.FinishHandler(1);
  c.AwaitStandbys(1);
  EXPECT_EQ(c.threads_started(), 2);
}

TEST(ReadingRoleTest, ShutdownWhileHandlersRunEndsEveryThread) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  ASSERT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  c.AwaitHolder(1);
  c.RunInlineHandler(kT0 + absl::Seconds(1));
  // Both threads are in handlers; the role is orphaned.
  c.role().Close();
  EXPECT_TRUE(c.role().closed());
  EXPECT_FALSE(c.role().HandOffIfOrphaned(kT0 + absl::Hours(1)));  // nothing starts
  EXPECT_FALSE(c.role().finished());  // threads still run
  c.FinishHandler(0);
  c.FinishHandler(1);
  c.AwaitExited(2);  // Acquire() returned false to both
  c.role().Join();
  EXPECT_TRUE(c.role().finished());
  EXPECT_EQ(c.threads_started(), 2);
}

TEST(ReadingRoleTest, ShutdownWakesAWaitingStandby) {
  FakeConnection c;
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  c.RunInlineHandler(kT0);
  ASSERT_TRUE(c.role().HandOffIfOrphaned(kT0 + absl::Milliseconds(1)));
  c.AwaitHolder(1);
  c.FinishHandler(0);
  c.AwaitStandbys(1);
  c.End();  // thread 1's read fails; thread 0 waits in Acquire()
  c.AwaitExited(2);
  c.role().Join();
  EXPECT_TRUE(c.role().finished());
}

// --- The watchdog ---------------------------------------------------------

// Counts hand-off ticks.
class TickCounter {
 public:
  void Tick(absl::Time released_before) {
    std::lock_guard<std::mutex> lock(mu_);
    ++ticks_;
    last_released_before_ = released_before;
    cv_.notify_all();
  }
  int ticks() {
    std::lock_guard<std::mutex> lock(mu_);
    return ticks_;
  }
  // Waits for a tick after the `after`th; returns its released_before.
  absl::Time AwaitTickAfter(int after) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, kPatience, [&] { return ticks_ > after; }));
    return last_released_before_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int ticks_ = 0;
  absl::Time last_released_before_;
};

// Event-loop mode (ReadingRole::EnableParking), driven step by step from
// the test's thread: BeginTurn() stands for the loop reporting a readiness.
class ParkedRoleTest : public ::testing::Test {
 protected:
  ParkedRoleTest()
      : role_([](bool) { ADD_FAILURE() << "event-loop mode started a thread"; },
              [](std::function<void()>) -> absl::StatusOr<std::thread> {
                return absl::ResourceExhaustedError("no threads in this test");
              }) {
    role_.EnableParking([this] { ++posts_; });
  }
  ~ParkedRoleTest() override { role_.Close(); }
  // The role as Start() leaves it (held by the first reader), without a thread.
  void HoldAsFirstReader() { ASSERT_TRUE(role_.TryAcquire()); }

  ReadingRole role_;
  int posts_ = 0;
};

TEST_F(ParkedRoleTest, AParkedRoleIsTakenByTheNextTurnOnly) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  EXPECT_FALSE(role_.TryAcquire()) << "a parked role was taken by a thread";
  ASSERT_TRUE(role_.BeginTurn());
  // A second turn (a readiness and a post at once) finds the role taken.
  EXPECT_FALSE(role_.BeginTurn()) << "two loop threads read one connection";
  role_.EndTurn();
  EXPECT_FALSE(role_.finished());
}

// The loop is edge-triggered: bytes that come while the holder reads make a
// turn that finds the role taken, and no later readiness will report them.
// The holder must not park over them.
TEST_F(ParkedRoleTest, AReadinessWhileHeldMakesTheNextParkReadAgain) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  ASSERT_TRUE(role_.BeginTurn());
  EXPECT_FALSE(role_.BeginTurn());  // bytes came during the turn
  EXPECT_FALSE(role_.Park()) << "parked over bytes that no readiness will report again";
  // The holder read again and found nothing more: now it parks.
  ASSERT_TRUE(role_.Park());
  role_.EndTurn();
  ASSERT_TRUE(role_.BeginTurn());
  role_.EndTurn();
}

TEST_F(ParkedRoleTest, AReadinessDuringAnInlineHandlerIsReadByItsThread) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  ASSERT_TRUE(role_.BeginTurn());
  role_.ReleaseForInlineHandler(absl::Now());
  EXPECT_FALSE(role_.BeginTurn());  // the next request, while the handler runs
  ASSERT_TRUE(role_.TryAcquire());  // the handler returned
  EXPECT_FALSE(role_.Park()) << "the next request would wait for a readiness that never comes";
  ASSERT_TRUE(role_.Park());
  role_.EndTurn();
}

TEST_F(ParkedRoleTest, AnOrphanedRoleIsHandedToTheLoopNotToAThread) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  ASSERT_TRUE(role_.BeginTurn());
  const absl::Time released = absl::Now();
  role_.ReleaseForInlineHandler(released);
  EXPECT_FALSE(role_.HandOffIfOrphaned(released - absl::Milliseconds(1)));  // not yet
  ASSERT_TRUE(role_.HandOffIfOrphaned(released + absl::Milliseconds(1)));
  EXPECT_EQ(posts_, 1) << "a hand-off must ask the loop for a turn at once";
  EXPECT_EQ(role_.standbys(), 0);
  // The handler returns: the loop has the role, so its thread goes back.
  EXPECT_FALSE(role_.TryAcquire());
  role_.EndTurn();
  // The loop's next turn reads.
  ASSERT_TRUE(role_.BeginTurn());
  role_.EndTurn();
}

TEST_F(ParkedRoleTest, AQuickInlineHandlerTakesTheRoleBack) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  ASSERT_TRUE(role_.BeginTurn());
  role_.ReleaseForInlineHandler(absl::Now());
  EXPECT_TRUE(role_.TryAcquire());
  EXPECT_FALSE(role_.HandOffIfOrphaned(absl::InfiniteFuture())) << "handed off while held";
  EXPECT_EQ(posts_, 0);
  ASSERT_TRUE(role_.Park());
  role_.EndTurn();
}

TEST_F(ParkedRoleTest, ClosedEndsTurnsAndFinishesOnceTheLastTurnEnds) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  ASSERT_TRUE(role_.BeginTurn());
  role_.Close();  // the turn's read failed: the connection ended
  EXPECT_FALSE(role_.finished()) << "finished while a turn runs";
  EXPECT_TRUE(role_.Park()) << "a closed role has nothing more to read";
  EXPECT_FALSE(role_.BeginTurn());
  role_.EndTurn();
  EXPECT_TRUE(role_.finished());
  role_.Join();  // returns: closed and no turn
}

TEST_F(ParkedRoleTest, JoinWaitsForTheTurnThatEndsTheConnection) {
  HoldAsFirstReader();
  ASSERT_TRUE(role_.Park());
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    role_.Join();
    joined = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(joined.load()) << "Join returned while the role was parked";
  ASSERT_TRUE(role_.BeginTurn());
  role_.Close();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(joined.load()) << "Join returned while a turn ran";
  role_.EndTurn();
  joiner.join();
  EXPECT_TRUE(joined.load());
}

TEST(WatchdogTest, InlineSlotsAreBounded) {
  ReadingRole::Watchdog watchdog(2, [](absl::Time) {});
  EXPECT_TRUE(watchdog.TryStartInlineHandler());
  EXPECT_TRUE(watchdog.TryStartInlineHandler());
  EXPECT_FALSE(watchdog.TryStartInlineHandler());
  watchdog.InlineHandlerDone();
  EXPECT_TRUE(watchdog.TryStartInlineHandler());
}

TEST(WatchdogTest, TicksWhileAHandlerRunsInlineAskingForRolesOlderThanTheGrace) {
  TickCounter ticks;
  const absl::Duration grace = absl::Milliseconds(1);
  ReadingRole::Watchdog watchdog(
      4, [&](absl::Time released_before) { ticks.Tick(released_before); }, grace);
  ASSERT_TRUE(watchdog.Start().ok());
  ASSERT_TRUE(watchdog.TryStartInlineHandler());
  const int before = ticks.ticks();
  const absl::Time started = absl::Now();
  absl::Time released_before = ticks.AwaitTickAfter(before);
  absl::Time tick_returned = absl::Now();
  // The tick came after the handler started and looks `grace` into the past.
  EXPECT_LE(released_before, tick_returned - grace);
  EXPECT_GT(released_before, started - absl::Minutes(1));
  watchdog.InlineHandlerDone();
  watchdog.Stop();
}

TEST(WatchdogTest, SleepsWhenIdleAndWakesForTheNextInlineHandler) {
  TickCounter ticks;
  ReadingRole::Watchdog watchdog(
      4, [&](absl::Time released_before) { ticks.Tick(released_before); },
      absl::Milliseconds(1), /*idle=*/absl::Milliseconds(5));
  ASSERT_TRUE(watchdog.Start().ok());
  auto until = std::chrono::steady_clock::now() + kPatience;
  while (!watchdog.sleeping()) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the watchdog never went to sleep";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int before = ticks.ticks();
  ASSERT_TRUE(watchdog.TryStartInlineHandler());  // wakes it
  ticks.AwaitTickAfter(before);
  watchdog.InlineHandlerDone();
  watchdog.Stop();
  watchdog.Stop();  // idempotent
}

// The two halves together, with the real clock: a handler that blocks
// until somebody else reads the connection gets its standby.
TEST(WatchdogTest, BlockedInlineHandlerGetsAStandbyReader) {
  FakeConnection c;
  ReadingRole::Watchdog watchdog(
      4, [&](absl::Time released_before) { c.role().HandOffIfOrphaned(released_before); });
  ASSERT_TRUE(watchdog.Start().ok());
  ASSERT_TRUE(c.role().Start().ok());
  c.AwaitHolder(0);
  ASSERT_TRUE(watchdog.TryStartInlineHandler());
  c.RunInlineHandler(absl::Now());
  c.AwaitHolder(1);  // handed off by the watchdog
  c.FinishHandler(0);
  watchdog.InlineHandlerDone();
  c.AwaitStandbys(1);
  watchdog.Stop();
  EXPECT_EQ(c.threads_started(), 2);
}

}  // namespace
}  // namespace ipcrpc::internal
