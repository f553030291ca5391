// ipcrpc internal: completes a client connection's asynchronous unary calls.
//
// Channel::AsyncUnaryCall starts a call like any other and hands it to its
// connection's AsyncPoller (Add). A poller thread, started on demand and
// ending when no asynchronous call is pending, waits for those calls the way
// a blocking caller would: it takes the connection's reading role when nobody
// else reads (ClientConnection::AwaitLocked), so frames keep arriving, and
// it finishes calls whose deadline passes. When a call finishes (trailers,
// failure, deadline) the poller parses its response and runs its callback —
// on the poller thread, without any lock held.
//
// Thread-safety: all state is guarded by the connection's mutex (the `mu`
// given to the constructor); methods ending in Locked must be called with it
// held, Add without it.
//
// Ownership: a member of its ClientConnection; the poller thread holds a
// reference to the connection while it runs. Pending calls (their
// ClientStreams) are owned here until their callback has run.

#ifndef IPCRPC_RUNTIME_INTERNAL_ASYNC_POLLER_H_
#define IPCRPC_RUNTIME_INTERNAL_ASYNC_POLLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "google/protobuf/message_lite.h"

namespace ipcrpc::internal {

class ClientConnection;
class ClientStream;

class AsyncPoller {
 public:
  // `connection` owns this poller; `mu` is its mutex.
  AsyncPoller(ClientConnection& connection, internal::Mutex& mu);
  AsyncPoller(const AsyncPoller&) = delete;
  AsyncPoller& operator=(const AsyncPoller&) = delete;

  // Takes a started unary call: `done` runs once with its final status, after
  // `response` has been filled in. Starts the poller thread if none runs; if
  // the system refuses a thread, `done` runs at once with RESOURCE_EXHAUSTED.
  void Add(std::unique_ptr<ClientStream> stream, google::protobuf::MessageLite* response,
           std::function<void(absl::Status)> done);

  // `stream` has just finished: if it is an asynchronous call, it is queued
  // for its callback.
  void StreamFinishedLocked(ClientStream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The poller thread's side of ClientConnection::AwaitLocked: it sleeps
  // here while another thread reads.
  void WaitLocked(absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes the poller thread if it is in WaitLocked; false if it is not.
  bool WakeIfWaitingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The connection broke (every stream has been finished): wake up.
  void ConnectionBrokenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  struct Call {
    std::unique_ptr<ClientStream> stream;
    google::protobuf::MessageLite* response;
    std::function<void(absl::Status)> done;
  };

  void Loop();
  // Removes call `id` from pending_ or completed_, if there.
  std::optional<Call> TakeLocked(uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Parses the response of a finished call and runs its callback (no lock held).
  static void Complete(Call call);

  ClientConnection& connection_;
  internal::Mutex& mu_;
  absl::flat_hash_map<uint32_t, Call> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> completed_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  internal::CondVar cv_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_ASYNC_POLLER_H_
