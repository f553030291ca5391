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
// Calls made while serving a call: FromServerContext(server_context) makes a
// context whose call carries the server call's deadline and is cancelled
// when the server call is (see there).
//
// Example:
//   ipcrpc::ClientContext ctx;
//   ctx.set_timeout(absl::Milliseconds(200));  // or std::chrono::milliseconds(200)
//   ctx.AddMetadata("request-id", "42");
//   absl::Status s = stub->SayHello(&ctx, request, &reply);
//   auto it = ctx.GetServerTrailingMetadata().find("cost");

#ifndef IPCRPC_RUNTIME_CLIENT_CONTEXT_H_
#define IPCRPC_RUNTIME_CLIENT_CONTEXT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/compression.h"
#include "runtime/metadata.h"
#include "runtime/call_buffers.h"
#include "runtime/call_fds.h"

namespace ipcrpc {
class ServerContext;
namespace internal {
class ChildCalls;
class ClientConnection;
class ClientStream;
class InterceptionAccess;
class ForeignCallAccess;

// Any std::chrono duration as an absl::Duration; saturates to
// ±absl::InfiniteDuration() beyond what int64 nanoseconds hold (~292 years).
template <typename Rep, typename Period>
absl::Duration DurationFromChrono(std::chrono::duration<Rep, Period> d) {
  const std::chrono::duration<long double> seconds = d;
  constexpr long double kLimit = 9.2e9L;  // seconds; INT64_MAX ns is 9.22e9 s
  if (seconds.count() >= kLimit) return absl::InfiniteDuration();
  if (seconds.count() <= -kLimit) return -absl::InfiniteDuration();
  return absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
}
}  // namespace internal

class ClientContext {
 public:
  ClientContext() = default;
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A context for a call made on behalf of the server call `server_context`
  // belongs to (as grpc::ClientContext::FromServerContext):
  //  * its deadline is the server call's deadline (a call past it fails with
  //    DEADLINE_EXCEEDED, as the server call does); set_deadline/set_timeout
  //    replace it;
  //  * when the server call is cancelled — its client cancelled, its
  //    connection closed, or the server shut down past its drain deadline —
  //    the call is cancelled too (TryCancel: it ends with CANCELLED), also if
  //    it starts only afterwards.
  // Either may outlive the other: the context may be kept (and its call
  // finished) after the handler returned.
  static std::unique_ptr<ClientContext> FromServerContext(const ServerContext& server_context);

  // The call fails with DEADLINE_EXCEEDED once `deadline` passes; the server
  // sees the same deadline. Default: none (absl::InfiniteFuture()).
  void set_deadline(absl::Time deadline) { deadline_ = deadline; }
  void set_timeout(absl::Duration timeout) { deadline_ = absl::Now() + timeout; }
  absl::Time deadline() const { return deadline_; }

  // The same with std::chrono types, as grpc::ClientContext takes them:
  //   ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  //   ctx.set_timeout(std::chrono::milliseconds(200));  // any duration type
  // system_clock::time_point::max() and durations beyond ~292 years mean
  // "no deadline".
  void set_deadline(std::chrono::system_clock::time_point deadline) {
    deadline_ = deadline == std::chrono::system_clock::time_point::max()
                    ? absl::InfiniteFuture()
                    : absl::FromChrono(deadline);
  }
  template <typename Rep, typename Period>
  void set_timeout(std::chrono::duration<Rep, Period> timeout) {
    set_timeout(internal::DurationFromChrono(timeout));
  }
  // deadline() as a system_clock time point (what grpc::ClientContext::deadline()
  // returns); time_point::max() when there is none.
  std::chrono::system_clock::time_point deadline_chrono() const {
    return absl::ToChronoTime(deadline_);
  }

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

  // Compresses this call's requests with `algorithm` (kNone: not at all),
  // instead of the channel's default, when the server accepts it
  // (runtime/compression.h). As grpc::ClientContext::set_compression_algorithm.
  void set_compression_algorithm(CompressionAlgorithm algorithm) {
    compression_ = algorithm;
    compression_set_ = true;
  }
  // The algorithm set above; kNone if none was set (the channel's default
  // applies then).
  CompressionAlgorithm compression_algorithm() const { return compression_; }

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

  // The descriptors of this call: those that came with the last response read
  // (ipcrpc::TakeFd) and those kept until sent (ipcrpc::AttachFd); see
  // runtime/call_fds.h and runtime/file_descriptor.h.
  CallFds& fds() { return fds_; }
  // The shared buffers of this call: received ones not taken yet, writers
  // kept for sending. runtime/call_buffers.h and runtime/shared_buffer.h.
  CallBuffers& buffers() { return buffers_; }

  // What carried the call, e.g. "unix:/run/x.sock" or "shm via shm:/run/x.sock"
  // (set once the call has started).
  const std::string& transport() const {
    static const std::string* const kNotStarted = new std::string();
    return transport_ != nullptr ? *transport_ : *kNotStarted;
  }

 private:
  friend class internal::ClientConnection;
  friend class internal::ClientStream;
  friend class internal::InterceptionAccess;
  friend class internal::ForeignCallAccess;  // Channels outside the core (runtime/codegen/foreign_call.h)

  absl::Time deadline_ = absl::InfiniteFuture();
  bool wait_for_ready_ = false;
  CompressionAlgorithm compression_ = CompressionAlgorithm::kNone;
  bool compression_set_ = false;
  Metadata send_metadata_;
  Metadata initial_metadata_;
  Metadata trailing_metadata_;
  PeerCredentials peer_;
  CallFds fds_;
  CallBuffers buffers_;
  std::shared_ptr<const std::string> transport_;  // the connection's description
  // Set by FromServerContext: the server call's registry of child calls.
  std::shared_ptr<internal::ChildCalls> parent_calls_;

  internal::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  internal::ClientStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Set by a Channel that is not an ipcrpc connection (e.g. the gRPC bridge)
  // while its call runs: what TryCancel() runs.
  std::function<void()> foreign_cancel_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CLIENT_CONTEXT_H_
