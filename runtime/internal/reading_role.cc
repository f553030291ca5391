#include "runtime/internal/reading_role.h"

#include <utility>

#include "absl/time/clock.h"

namespace ipcrpc::internal {
namespace {

// The role whose loop turn this thread is in (a handler that shuts its own
// server down joins its own connection from inside the turn).
thread_local const ReadingRole* current_turn = nullptr;

}  // namespace

// ---------------------------------------------------------------------------
// ReadingRole

ReadingRole::ReadingRole(std::function<void(bool holds_role)> thread_body,
                         ThreadStarter start_thread)
    : thread_body_(std::move(thread_body)), start_thread_(std::move(start_thread)) {}

ReadingRole::~ReadingRole() { Join(); }

absl::Status ReadingRole::Start() {
  internal::MutexLock lock(&mu_);
  held_ = true;  // the first thread reads from the start
  return StartThreadLocked(/*holds_role=*/true);
}

absl::Status ReadingRole::StartThreadLocked(bool holds_role) {
  absl::StatusOr<std::thread> t = start_thread_([this, holds_role] {
    thread_body_(holds_role);
    internal::MutexLock lock(&mu_);
    --live_threads_;  // last touch of shared state: Join() may follow at once
  });
  if (!t.ok()) return t.status();
  ++live_threads_;  // under mu_, which the new thread needs before it decrements
  threads_.push_back(std::move(*t));
  return absl::OkStatus();
}

bool ReadingRole::Acquire() {
  internal::MutexLock lock(&mu_);
  ++standbys_;
  while (held_ && !closed_) standby_cv_.Wait(&mu_);
  --standbys_;
  if (closed_) return false;
  held_ = true;
  orphaned_ = false;
  return true;
}

void ReadingRole::ReleaseForInlineHandler(absl::Time now) {
  internal::MutexLock lock(&mu_);
  held_ = false;
  orphaned_ = true;
  released_at_ = now;
}

bool ReadingRole::HandOffIfOrphaned(absl::Time released_before) {
  internal::MutexLock lock(&mu_);
  if (!orphaned_ || held_ || closed_ || released_at_ > released_before) return false;
  if (post_) {
    held_ = true;  // by the loop, which reads it in the turn posted now
    parked_ = true;
    post_();
  } else if (standbys_ > 0) {
    standby_cv_.Signal();
  } else if (!StartThreadLocked(/*holds_role=*/false).ok()) {
    return false;  // still orphaned: tried again on the next tick
  }
  orphaned_ = false;
  return true;
}

void ReadingRole::Close() {
  internal::MutexLock lock(&mu_);
  closed_ = true;
  standby_cv_.SignalAll();
  turns_cv_.SignalAll();
}

void ReadingRole::EnableParking(std::function<void()> post) {
  internal::MutexLock lock(&mu_);
  post_ = std::move(post);
}

bool ReadingRole::Park() {
  internal::MutexLock lock(&mu_);
  if (closed_) return true;
  if (missed_readiness_) {
    missed_readiness_ = false;
    return false;  // bytes came meanwhile, and no new readiness will say so
  }
  parked_ = true;  // held_ stays: by the loop
  return true;
}

bool ReadingRole::BeginTurn() {
  internal::MutexLock lock(&mu_);
  if (closed_) return false;
  if (!parked_) {
    missed_readiness_ = true;  // for the holder's next Park()
    return false;
  }
  ++turns_;
  parked_ = false;  // held_ stays: this thread holds the role now
  current_turn = this;
  return true;
}

void ReadingRole::EndTurn() {
  current_turn = nullptr;
  internal::MutexLock lock(&mu_);
  --turns_;
  turns_cv_.SignalAll();
}

bool ReadingRole::TryAcquire() {
  internal::MutexLock lock(&mu_);
  if (closed_ || held_) return false;
  held_ = true;
  orphaned_ = false;
  return true;
}

bool ReadingRole::closed() const {
  internal::MutexLock lock(&mu_);
  return closed_;
}

int ReadingRole::standbys() const {
  internal::MutexLock lock(&mu_);
  return standbys_;
}

bool ReadingRole::finished() const {
  internal::MutexLock lock(&mu_);
  return closed_ && live_threads_ == 0 && turns_ == 0;
}

void ReadingRole::Join() {
  for (;;) {
    std::vector<std::thread> threads;
    {
      internal::MutexLock lock(&mu_);
      threads.swap(threads_);
      if (threads.empty()) {
        // A parked role ends in a loop turn (its fd reports the close).
        const int own = current_turn == this ? 1 : 0;
        while (post_ && !(closed_ && turns_ == own)) turns_cv_.Wait(&mu_);
        return;
      }
    }
    for (std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();  // the last reference died on this very thread
      } else {
        t.join();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// ReadingRole::Watchdog

ReadingRole::Watchdog::Watchdog(int max_inline,
                                std::function<void(absl::Time released_before)> hand_off,
                                absl::Duration grace, absl::Duration idle)
    : max_inline_(max_inline), hand_off_(std::move(hand_off)), grace_(grace), idle_(idle) {}

ReadingRole::Watchdog::~Watchdog() { Stop(); }

absl::Status ReadingRole::Watchdog::Start() {
  absl::StatusOr<std::thread> t = StartThread([this] { Loop(); });
  if (!t.ok()) return t.status();
  thread_ = std::move(*t);
  return absl::OkStatus();
}

void ReadingRole::Watchdog::Stop() {
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;
    cv_.Signal();
  }
  if (thread_.joinable()) thread_.join();
}

void ReadingRole::Watchdog::Wake() {
  internal::MutexLock lock(&mu_);
  cv_.Signal();
}

void ReadingRole::Watchdog::Loop() {
  internal::MutexLock lock(&mu_);
  absl::Time last_busy = absl::Now();
  while (!stop_) {
    absl::Time now = absl::Now();
    if (inline_handlers_.load() > 0) last_busy = now;
    if (now - last_busy > idle_) {
      // Nothing runs inline: sleep until a handler starts (no periodic tick).
      sleeping_.store(true);
      if (inline_handlers_.load() == 0) cv_.Wait(&mu_);
      sleeping_.store(false);
      last_busy = absl::Now();
      continue;
    }
    cv_.WaitWithTimeout(&mu_, grace_);
    if (stop_) break;
    mu_.Unlock();
    hand_off_(absl::Now() - grace_);
    mu_.Lock();
  }
}

}  // namespace ipcrpc::internal
