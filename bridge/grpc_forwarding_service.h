// ipcrpc gRPC bridge: a gRPC service that forwards every call to ipcrpc.
//
// ForwardingGenericService is a grpc::CallbackGenericService: registered on
// a grpc::ServerBuilder (RegisterCallbackGenericService), it receives every
// method the gRPC server has no other service for and forwards the call,
// byte for byte, to an ipcrpc Channel with the generic API
// (runtime/generic_stub.h): the method's wire name, the client's metadata
// and deadline go with it (bridge/grpc_mapping.h says what crosses), the
// messages both ways, the final status, initial and trailing metadata back;
// a gRPC client's cancellation cancels the ipcrpc call.
//
// Flow control: each call has at most one message in flight per direction.
// A message is read from one side only after the previous one was accepted
// by the other (an ipcrpc Write waits for stream credit; a gRPC write
// completes once gRPC's own flow control took it), so a slow reader on
// either side slows the writer on the other instead of filling memory.
//
// Threads: a call runs on one thread of a WorkerPool (bridge/worker_pool.h)
// — two while a client-streaming or bidi call's requests and responses flow
// at once; beyond `max_concurrent_calls` calls a new call fails at once with
// RESOURCE_EXHAUSTED.
//
// Thread-safety: thread-safe. Lifetime: the gRPC server must be shut down
// (which ends every call) before the service is destroyed; the destructor
// also waits for the calls' threads.
//
// Example (what ServeOverGrpc and ipcrpc_gateway do):
//   ForwardingGenericService forward(*ipcrpc::CreateChannel("unix:/run/app.sock"));
//   grpc::ServerBuilder builder;
//   builder.AddListeningPort("0.0.0.0:50051", grpc::InsecureServerCredentials());
//   builder.RegisterCallbackGenericService(&forward);
//   auto server = builder.BuildAndStart();

#ifndef IPCRPC_BRIDGE_GRPC_FORWARDING_SERVICE_H_
#define IPCRPC_BRIDGE_GRPC_FORWARDING_SERVICE_H_

#include <cstddef>
#include <memory>

#include <grpcpp/generic/async_generic_service.h>

#include "base/sync.h"
#include "bridge/worker_pool.h"
#include "runtime/channel.h"
#include "runtime/generic_stub.h"

namespace ipcrpc {
namespace grpc_bridge {

class ForwardingGenericService final : public grpc::CallbackGenericService {
 public:
  explicit ForwardingGenericService(std::shared_ptr<Channel> channel,
                                    size_t max_concurrent_calls = 1000);
  ~ForwardingGenericService() override;
  ForwardingGenericService(const ForwardingGenericService&) = delete;
  ForwardingGenericService& operator=(const ForwardingGenericService&) = delete;

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

 private:
  class ForwardedCall;

  GenericStub stub_;
  const size_t max_concurrent_calls_;
  internal::Mutex mu_;
  internal::CondVar calls_cv_;
  size_t calls_ ABSL_GUARDED_BY(mu_) = 0;  // ForwardedCalls not yet destroyed
  WorkerPool workers_;  // destroyed after the calls are (see the destructor)
};

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_GRPC_FORWARDING_SERVICE_H_
