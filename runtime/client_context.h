// ipcrpc: per-call settings and results on the client side.
//
// A ClientContext configures one call (deadline, metadata to send) and
// afterwards holds what the server sent besides messages (initial and
// trailing metadata). Use a fresh ClientContext for every call, and keep it
// alive until the call has finished (for streams: until Finish() returned).
//
// Thread-safety: configure it before the call from one thread; TryCancel()
// may be called from any thread at any time.
//
// Example:
//   ipcrpc::ClientContext ctx;
//   ctx.set_timeout(absl::Milliseconds(200));
//   ctx.AddMetadata("request-id", "42");
//   absl::Status s = stub->SayHello(&ctx, request, &reply);
//   auto it = ctx.GetServerTrailingMetadata().find("cost");

#ifndef IPCRPC_RUNTIME_CLIENT_CONTEXT_H_
#define IPCRPC_RUNTIME_CLIENT_CONTEXT_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/metadata.h"

namespace ipcrpc {
namespace internal {
class ClientConnection;
class ClientStream;
}  // namespace internal

class ClientContext {
 public:
  ClientContext() = default;
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // The call fails with DEADLINE_EXCEEDED once `deadline` passes; the server
  // sees the same deadline. Default: none.
  void set_deadline(absl::Time deadline) { deadline_ = deadline; }
  void set_timeout(absl::Duration timeout) { deadline_ = absl::Now() + timeout; }
  absl::Time deadline() const { return deadline_; }

  // Adds one entry of metadata sent with the call. See metadata.h for keys.
  void AddMetadata(std::string key, std::string value) {
    send_metadata_.emplace(std::move(key), std::move(value));
  }
  const Metadata& send_metadata() const { return send_metadata_; }

  // gRPC's wait-for-ready: while the server is not there (nobody listening,
  // or the connection is being re-made), keep trying until the deadline
  // instead of failing at once with UNAVAILABLE. Default: false (fail fast).
  void set_wait_for_ready(bool wait_for_ready) { wait_for_ready_ = wait_for_ready; }
  bool wait_for_ready() const { return wait_for_ready_; }

  // Cancels the call (before it starts, or while it runs). The server's
  // handler sees ServerContext::IsCancelled(); the call ends with CANCELLED.
  void TryCancel();

  // The server's initial metadata: available once a response message,
  // or the final status, has been received.
  const Metadata& GetServerInitialMetadata() const { return initial_metadata_; }
  // The server's trailing metadata: available once the call has finished.
  const Metadata& GetServerTrailingMetadata() const { return trailing_metadata_; }

  // The server process, as the kernel saw it when the connection was made.
  const PeerCredentials& peer() const { return peer_; }

  // What carried the call, e.g. "unix:/run/x.sock" or "shm via shm:/run/x.sock"
  // (set once the call has started).
  const std::string& transport() const {
    static const std::string* const kNotStarted = new std::string();
    return transport_ != nullptr ? *transport_ : *kNotStarted;
  }

 private:
  friend class internal::ClientConnection;
  friend class internal::ClientStream;

  absl::Time deadline_ = absl::InfiniteFuture();
  bool wait_for_ready_ = false;
  Metadata send_metadata_;
  Metadata initial_metadata_;
  Metadata trailing_metadata_;
  PeerCredentials peer_;
  std::shared_ptr<const std::string> transport_;  // the connection's description

  internal::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  internal::ClientStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CLIENT_CONTEXT_H_
