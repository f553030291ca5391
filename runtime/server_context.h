// ipcrpc: per-call information and controls on the server side.
//
// The runtime creates one ServerContext per call and hands it to the handler.
// It tells the handler who is calling (peer credentials from the kernel),
// with what metadata and deadline, and whether the call has been cancelled;
// the handler may add initial and trailing metadata.
//
// Thread-safety: IsCancelled() may be called from any thread; everything else
// from the handler's thread. Lifetime: valid until the handler returns.
//
// Calls the handler makes to other servers should use
// ClientContext::FromServerContext(*ctx): they get this call's deadline and
// are cancelled with it.
//
// Example:
//   absl::Status SayHello(ipcrpc::ServerContext* ctx, const HelloRequest* req,
//                         HelloReply* reply) override {
//     if (ctx->peer().uid != getuid()) return absl::PermissionDeniedError("no");
//     ctx->AddTrailingMetadata("served-by", "worker-1");
//     ...
//   }

#ifndef IPCRPC_RUNTIME_SERVER_CONTEXT_H_
#define IPCRPC_RUNTIME_SERVER_CONTEXT_H_

#include <atomic>
#include <chrono>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runtime/compression.h"
#include "runtime/metadata.h"
#include "runtime/call_buffers.h"
#include "runtime/call_fds.h"

namespace ipcrpc {
class CallbackServerContext;
class ClientContext;
class ServerUnaryReactor;
namespace internal {
class InterceptionAccess;
struct ReactorAccess;
class ServerReactorCall;
class ServerStream;
}  // namespace internal

class ServerContext {
 public:
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // The wire name of the method being called, e.g. "/demo.Greeter/SayHello".
  absl::string_view method() const { return method_; }

  // The client's deadline (absl::InfiniteFuture() if it set none).
  absl::Time deadline() const { return deadline_; }
  // The same as a system_clock time point, which is what
  // grpc::ServerContext::deadline() returns (time_point::max() if none).
  // Code ported from grpcpp: `ctx->deadline()` becomes `ctx->deadline_chrono()`.
  std::chrono::system_clock::time_point deadline_chrono() const {
    return absl::ToChronoTime(deadline_);
  }

  // true once the client cancelled, the deadline passed, the client's
  // connection closed, or the server is shutting down past its drain
  // deadline. Long-running handlers should poll it and return early.
  bool IsCancelled() const;

  // The metadata the client sent with the call.
  const Metadata& client_metadata() const { return client_metadata_; }

  // Metadata sent to the client before the first response message (or with
  // the status if there is none). Ignored once initial metadata has gone out.
  void AddInitialMetadata(std::string key, std::string value) {
    initial_metadata_.emplace(std::move(key), std::move(value));
  }
  // Metadata sent to the client together with the final status.
  void AddTrailingMetadata(std::string key, std::string value) {
    trailing_metadata_.emplace(std::move(key), std::move(value));
  }

  // Compresses the responses of this call (those not sent yet) with
  // `algorithm`, when the client accepts it (runtime/compression.h).
  // Default: ServerOptions::default_compression_algorithm. As
  // grpc::ServerContext::set_compression_algorithm.
  void set_compression_algorithm(CompressionAlgorithm algorithm) { compression_ = algorithm; }
  CompressionAlgorithm compression_algorithm() const { return compression_; }

  // The client process (pid/uid/gid from SO_PEERCRED for unix sockets).
  const PeerCredentials& peer() const { return peer_; }

  // The descriptors of this call: those that came with the last request read
  // (ipcrpc::TakeFd) and those kept until sent (ipcrpc::AttachFd); see
  // runtime/call_fds.h and runtime/file_descriptor.h.
  CallFds& fds() { return fds_; }
  // The shared buffers of this call: received ones not taken yet, writers
  // kept for sending. runtime/call_buffers.h and runtime/shared_buffer.h.
  CallBuffers& buffers() { return buffers_; }

 private:
  friend class CallbackServerContext;
  friend class ClientContext;  // FromServerContext
  friend class internal::InterceptionAccess;
  friend class internal::ServerStream;
  ServerContext() = default;

  absl::string_view method_;  // the registered method's name: outlives the call
  absl::Time deadline_ = absl::InfiniteFuture();
  Metadata client_metadata_;
  Metadata initial_metadata_;
  Metadata trailing_metadata_;
  PeerCredentials peer_;
  CompressionAlgorithm compression_ = CompressionAlgorithm::kNone;
  CallFds fds_;
  CallBuffers buffers_;
  const internal::ServerStream* stream_ = nullptr;
};

// The context of a callback method (runtime/server_callback.h): the same
// information and controls, valid until the reactor's OnDone.
class CallbackServerContext final : public ServerContext {
 public:
  // A reactor for a unary method that needs nothing but Finish: it deletes
  // itself after OnDone. As grpc::CallbackServerContext::DefaultReactor():
  //   auto* reactor = context->DefaultReactor();
  //   reactor->Finish(absl::OkStatus());
  //   return reactor;
  ServerUnaryReactor* DefaultReactor();

 private:
  friend struct internal::ReactorAccess;
  friend class internal::ServerStream;
  CallbackServerContext() = default;

  // What the call's reactors talk to: the call, or the interceptors in
  // front of it. Set before the method runs.
  internal::ServerReactorCall* reactor_call_ = nullptr;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SERVER_CONTEXT_H_
