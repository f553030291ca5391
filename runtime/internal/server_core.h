// ipcrpc internal: the server machinery behind ipcrpc::Server.
//
// ServerCore owns the listeners (one accept thread each), the connections,
// the handler thread pool, the method table, the reading-role watchdog and
// the event loop. The pieces, one file each:
//   server_core.h        this: listeners, connections, call accounting, shutdown
//   server_connection.h  one connection: frames in, calls started, handlers run
//   reading_role.h       which thread reads a connection; the lazy hand-off of
//                        that role when an inline handler runs > 1 ms (watchdog)
//   event_loop.h         where connections with a readiness fd (unix sockets)
//                        wait while idle: no thread per idle connection
//   server_stream.h      one call (ServerCall) and its ServerContext
//
// Where handlers run: a unary or server-streaming call whose request is
// complete runs on the thread that read it (inline; at most
// ServerOptions::num_threads at once across connections); client-streaming
// and bidi calls, and single-request calls beyond that limit, run on the
// pool (ServerOptions::num_threads threads, max_queued_calls queued; a full
// queue refuses the call with RESOURCE_EXHAUSTED). Handlers block on their
// stream's condition variable for requests and flow-control credit.
//
// Thread-safety: every public method is thread-safe. Locking:
// ServerCore::mu_ guards the connection list and connection count (call
// counts are atomic); each ServerConnection::mu_ guards its streams. Order:
// core, then connection, then the connection's ReadingRole (a leaf); none is
// held during a transport write.

#ifndef IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_
#define IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/internal/deadline_timer.h"
#include "runtime/internal/event_loop.h"
#include "runtime/internal/reading_role.h"
#include "runtime/internal/thread_pool.h"
#include "runtime/server.h"
#include "runtime/service.h"
#include "transports/transport.h"

namespace ipcrpc::internal {

class ServerConnection;

class ServerCore {
 public:
  // `generic_method`, if not null, serves every method no service serves
  // (see FindGenericMethod).
  ServerCore(const ServerOptions& options, std::vector<Service*> services,
             const Service::RegisteredMethod* generic_method = nullptr);
  ~ServerCore();

  // Checks the method table (duplicate service names) and starts the pool and
  // the watchdog; call once before use.
  absl::Status Init();
  // RESOURCE_EXHAUSTED if the listener's accept thread cannot start.
  absl::Status AddListener(std::unique_ptr<Listener> listener);
  // Serves `transport` as a new connection. FAILED_PRECONDITION once shutting
  // down; RESOURCE_EXHAUSTED if its thread cannot start (the client is then
  // refused with that status and the transport closed; the server goes on).
  absl::Status AddTransport(std::unique_ptr<Transport> transport);
  void Wait();
  void Shutdown(absl::Time deadline);
  std::vector<std::string> addresses() const;

  const ServerOptions& options() const { return options_; }
  // ServerOptions::max_streaming_handlers_per_connection, its default applied.
  uint32_t max_streaming_handlers_per_connection() const {
    return streaming_handlers_per_connection_;
  }
  // Looks a method up; UNIMPLEMENTED with a precise message if absent.
  absl::StatusOr<const Service::RegisteredMethod*> FindMethod(absl::string_view name) const;
  // Generic dispatch: the method serving names no service serves, or null.
  // A call it serves has its stream keep the wire name
  // (ServerStream::KeepMethodName), since its descriptor's name is empty.
  const Service::RegisteredMethod* FindGenericMethod() const { return generic_method_; }
  ThreadPool& pool() { return *pool_; }
  // Tells callback calls their deadline has passed (they hold no thread).
  DeadlineTimer& deadline_timer() { return deadline_timer_; }
  // Counts the handlers running inline (at most num_threads across all
  // connections) and hands orphaned reading roles to standby threads.
  ReadingRole::Watchdog& watchdog() { return *watchdog_; }
  // Where connections with a readiness fd wait while idle (event_loop.h).
  EventLoop* event_loop() { return loop_.get(); }
  // Call accounting, for draining at shutdown.
  // Counts a call in, unless max_concurrent_calls are in progress already
  // (false: refuse it). Every true is matched by one CallEnded().
  bool TryCallStarted() {
    const size_t limit = options_.max_concurrent_calls;
    if (limit == 0) {
      active_calls_.fetch_add(1);
      return true;
    }
    int now = active_calls_.load(std::memory_order_relaxed);
    while (now >= 0 && static_cast<size_t>(now) < limit) {
      if (active_calls_.compare_exchange_weak(now, now + 1)) return true;
    }
    return false;
  }
  void CallEnded() {
    if (active_calls_.fetch_sub(1) == 1) {
      internal::MutexLock lock(&mu_);  // the unlock wakes Wait()/Shutdown() to re-check
    }
  }
  // A connection's reading ended (its threads and calls may still finish);
  // wakes the reaper.
  void ConnectionEnded(uid_t peer_uid);

  // Statistics (ServerStats): what the limits refused or closed.
  enum class Counter {
    kConnectionsAccepted,
    kConnectionsRefusedLimit,
    kConnectionsRefusedNoThread,
    kConnectionsClosedIdle,
    kConnectionsClosedKeepalive,
    kCallsResourceExhausted,
    kUndeclaredFdsClosed,
    kCount
  };
  void Count(Counter c, uint64_t n = 1) {
    counters_[static_cast<int>(c)].fetch_add(n, std::memory_order_relaxed);
  }
  ServerStats GetStats() const;

 private:
  void AcceptLoop(Listener* listener);
  // Joins and drops finished connections as they finish, so their fds are
  // released whether or not accept() still succeeds (it fails while fds run
  // out), and runs every connection's CheckIdle (idle timeout, keep-alive)
  // while there are connections. Runs on its own thread until shutdown.
  void ReapLoop();
  // OK, or RESOURCE_EXHAUSTED if a new connection from `uid` would exceed
  // max_connections or max_connections_per_uid.
  absl::Status AdmitLocked(uid_t uid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReapFinishedConnectionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IdleWithoutListenersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How often ReapLoop runs the connections' CheckIdle; zero: never.
  absl::Duration IdleCheckInterval() const;
  // The watchdog's tick: every connection's ReadingRole::HandOffIfOrphaned.
  void HandOffOrphanedRoles(absl::Time released_before);

  const ServerOptions options_;
  const uint32_t streaming_handlers_per_connection_;
  const std::vector<Service*> services_;
  const Service::RegisteredMethod* const generic_method_;  // may be null
  absl::flat_hash_map<std::string, const Service::RegisteredMethod*> methods_;
  absl::flat_hash_set<std::string> service_names_;
  std::unique_ptr<ThreadPool> pool_;
  DeadlineTimer deadline_timer_;  // its tasks schedule on pool_: stopped first
  std::unique_ptr<ReadingRole::Watchdog> watchdog_;
  std::unique_ptr<EventLoop> loop_;

  std::vector<std::unique_ptr<Listener>> listeners_;  // fixed after start
  std::vector<std::thread> accept_threads_;
  std::thread reaper_;

  mutable internal::Mutex mu_;
  std::vector<std::shared_ptr<ServerConnection>> connections_ ABSL_GUARDED_BY(mu_);
  // Not guarded, so starting and ending a call takes no lock; CallEnded locks
  // mu_ when the count reaches zero, so Await()s on it re-check.
  std::atomic<int> active_calls_{0};
  std::atomic<uint64_t> counters_[static_cast<int>(Counter::kCount)] = {};
  // Connections whose reading has not ended; connections_ holds these and
  // the ended ones not reaped yet.
  size_t live_connections_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uid_t, size_t> live_connections_per_uid_ ABSL_GUARDED_BY(mu_);
  internal::CondVar reap_cv_;  // with mu_: a connection ended, or shutdown
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_
