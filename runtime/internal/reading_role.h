// ipcrpc internal: who reads a server connection, and the lazy hand-off of
// that job when an inline handler holds the connection too long.
//
// One thread at a time holds a connection's *reading role*: it reads frames
// and, when a unary or server-streaming call's request is complete, runs the
// handler itself (inline). Before the handler runs, the reading thread calls
// ReleaseForInlineHandler(): the role is released *without waking anybody*.
// A quick handler is done, and its thread takes the role back with Acquire(),
// before anyone needed it — no thread hand-off on the call's path. If the
// role stays orphaned longer than the grace period (1 ms in the server), the
// Watchdog calls HandOffIfOrphaned(), which wakes a standby thread (one
// blocked in Acquire()) or, if none is idle, starts a new one, so the
// connection is read again. A thread whose handler returns takes the role
// back if nobody holds it, or else waits in Acquire() as a standby.
//
//   reading thread:  Acquire → read … → ReleaseForInlineHandler → handler → Acquire …
//   watchdog:        every grace period while handlers run inline:
//                    HandOffIfOrphaned(now - grace) on every connection
//
// ReadingRole owns the connection's threads: it starts them with the body
// given to its constructor (body(true) for the first thread, which holds
// the role from the start; body(false) for standbys, which begin with
// Acquire()) and joins them in Join(). A thread the system refuses (thread
// limit) is no crash: Start() returns RESOURCE_EXHAUSTED, and a standby that
// cannot start leaves the role orphaned, to be tried again on the next tick
// (the connection is read again at the latest when the inline handler
// returns).
//
// ReadingRole::Watchdog is the server-wide half: it counts the handlers that
// run inline (at most `max_inline` at once), and while any does it ticks
// every `grace` and calls its hand-off callback; `idle` after the last one
// it sleeps until the next starts (no periodic wake-up on an idle server).
//
// Thread-safety: every method is thread-safe. ReadingRole's lock is a leaf
// (no other lock is taken while it is held; the thread body is started under
// it but runs outside it). Times are passed in by the caller, so the role's
// protocol can be tested with a fake clock; only the Watchdog reads the
// real clock.
//
// Cost on the per-call path: ReleaseForInlineHandler and Acquire are one
// lock/unlock each (the same as before they were a class of their own);
// TryStartInlineHandler/InlineHandlerDone are one atomic operation each, plus
// one lock when the watchdog is asleep.
//
// Example (what ServerConnection does):
//   ReadingRole role([this](bool first) { ThreadMain(first); });
//   if (!role.Start().ok()) ...   // thread 1 runs ThreadMain(true), holding the role
//   // in ThreadMain: while (ReadUntilInlineHandler()) if (!role.Acquire()) return;
//   role.Close(); role.Join();    // at the end

#ifndef IPCRPC_RUNTIME_INTERNAL_READING_ROLE_H_
#define IPCRPC_RUNTIME_INTERNAL_READING_ROLE_H_

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "base/thread.h"

namespace ipcrpc::internal {

class ReadingRole {
 public:
  // `thread_body(holds_role)` is what every thread of the connection runs;
  // it must end (return) once Acquire() returns false.
  explicit ReadingRole(std::function<void(bool holds_role)> thread_body,
                       ThreadStarter start_thread = StartThread);
  ~ReadingRole();  // Join()s
  ReadingRole(const ReadingRole&) = delete;
  ReadingRole& operator=(const ReadingRole&) = delete;

  // Starts the first thread, which holds the role from the start.
  // RESOURCE_EXHAUSTED if it cannot start (the body never runs; Close() the
  // role then).
  absl::Status Start();

  // Blocks until nobody holds the role and it was handed to this thread (or
  // it was released and this thread is the first to ask), then holds it.
  // false once Close()d: the thread should end.
  bool Acquire();

  // The holder releases the role to run a handler inline. Wakes nobody; the
  // role counts as orphaned since `now` until someone Acquire()s it.
  void ReleaseForInlineHandler(absl::Time now);

  // If the role has been orphaned since before `released_before`, wakes one
  // standby thread (or starts one if none waits) to take it; true if it did
  // (false if a new thread could not start: the role stays orphaned).
  bool HandOffIfOrphaned(absl::Time released_before);

  // Ends the role: Acquire() returns false from now on (waiters wake) and no
  // thread is started any more. Idempotent.
  void Close();
  bool closed() const;

  // --- Event-loop mode (event_loop.h): the role waits in a loop, not a thread.
  //
  // Once EnableParking(post) has been called, the holder may Park() the role
  // instead of reading on: the role stays taken (nobody Acquire()s it) until
  // the loop reports the connection readable. The loop thread then
  // BeginTurn()s (holding the role), reads, and EndTurn()s. The loop is
  // edge-triggered: a readiness that comes while the role is not parked
  // (someone reads, or an inline handler runs) still calls BeginTurn(),
  // which then only notes it, and the next Park() refuses, so the holder
  // reads what came. An orphaned role is handed off by parking it and
  // calling `post()` (HandOffIfOrphaned; with the role's lock held, so it
  // must take no lock held while calling into the role, and cannot fail): a
  // turn at once, since the reader may hold frames already read. A thread
  // whose inline handler returns takes the role back only if it is still
  // orphaned (TryAcquire), never waiting as a standby.

  void EnableParking(std::function<void()> post);
  // The holder, having read everything readable, hands the role to the
  // loop: true if it did (or the role is closed: nothing more to read), and
  // then the caller must not touch the connection's reading state. false if
  // a readiness came since the last Park() or BeginTurn(): the caller still
  // holds the role and must read again before it parks.
  bool Park();
  // A loop thread takes the parked role; false if it is not parked (closed,
  // or someone holds it: the readiness is noted for its next Park()) — the
  // turn is then over at once, EndTurn() not needed.
  bool BeginTurn();
  // The turn's thread is done with the connection (whether or not it still
  // held the role: it parked it, or someone else holds it, or it is closed).
  void EndTurn();
  // After an inline handler: takes the role if nobody took it meanwhile.
  bool TryAcquire();

  // Joins every thread started so far (detaches the calling thread's own)
  // and, in event-loop mode, waits until it is closed and no turn runs.
  void Join();

  // Closed and every thread has returned from its body (and every loop
  // turn has ended).
  bool finished() const;

  // For tests: threads waiting in Acquire().
  int standbys() const;

  class Watchdog;

 private:
  absl::Status StartThreadLocked(bool holds_role) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<void(bool)> thread_body_;
  const ThreadStarter start_thread_;
  mutable internal::Mutex mu_;
  internal::CondVar standby_cv_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;  // a thread holds the role
  int standbys_ ABSL_GUARDED_BY(mu_) = 0;   // threads waiting in Acquire()
  // Released by an inline handler at released_at_, and nobody woken for it.
  bool orphaned_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time released_at_ ABSL_GUARDED_BY(mu_);
  int live_threads_ ABSL_GUARDED_BY(mu_) = 0;
  // Event-loop mode (post_ set).
  std::function<void()> post_ ABSL_GUARDED_BY(mu_);
  bool parked_ ABSL_GUARDED_BY(mu_) = false;  // held by the loop: no thread reads
  // A readiness came while not parked: the holder reads before parking.
  bool missed_readiness_ ABSL_GUARDED_BY(mu_) = false;
  int turns_ ABSL_GUARDED_BY(mu_) = 0;        // loop threads inside the connection
  internal::CondVar turns_cv_;                // turns_ went down, or closed
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

class ReadingRole::Watchdog {
 public:
  // The server's values.
  static constexpr absl::Duration kHandOffGrace = absl::Milliseconds(1);
  static constexpr absl::Duration kIdle = absl::Milliseconds(100);

  // `hand_off(released_before)` is called on the watchdog's thread every
  // `grace` while handlers run inline; it should call HandOffIfOrphaned on
  // every connection's role. Start() must be called before use.
  Watchdog(int max_inline, std::function<void(absl::Time released_before)> hand_off,
           absl::Duration grace = kHandOffGrace, absl::Duration idle = kIdle);
  ~Watchdog();  // Stop()s
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // RESOURCE_EXHAUSTED if its thread cannot start.
  absl::Status Start();
  // Stops and joins the watchdog's thread. Idempotent.
  void Stop();

  // Claims one of the `max_inline` slots for a handler about to run inline
  // (waking the watchdog if it sleeps); false if all are taken.
  // Inline: on every inline call's path.
  bool TryStartInlineHandler() {
    int in_use = inline_handlers_.load(std::memory_order_relaxed);
    while (in_use < max_inline_) {
      if (inline_handlers_.compare_exchange_weak(in_use, in_use + 1)) {
        // seq_cst on both sides (here and in Loop): either the watchdog sees
        // this handler, or this sees the watchdog asleep.
        if (sleeping_.load()) Wake();
        return true;
      }
    }
    return false;
  }
  void InlineHandlerDone() { inline_handlers_.fetch_sub(1); }

  // For tests: the watchdog's thread sleeps until a handler starts.
  bool sleeping() const { return sleeping_.load(); }

 private:
  void Loop();
  void Wake();

  const int max_inline_;
  const std::function<void(absl::Time)> hand_off_;
  const absl::Duration grace_;
  const absl::Duration idle_;
  std::atomic<int> inline_handlers_{0};
  std::atomic<bool> sleeping_{false};
  std::thread thread_;
  internal::Mutex mu_;
  internal::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_READING_ROLE_H_
