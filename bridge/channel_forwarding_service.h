// ipcrpc gRPC bridge: an ipcrpc generic service that forwards every call to
// another Channel.
//
// ChannelForwardingService receives every method of an ipcrpc server
// (ServerBuilder::RegisterGenericService) and forwards the call, byte for
// byte, to `channel` with the generic API: the method's wire name, the
// client's metadata, deadline and cancellation (ClientContext::FromServerContext),
// the messages both ways, the status, initial and trailing metadata back.
// With a "grpc:"/"grpcs:" channel (bridge/grpc_channel.h) this is the
// ipcrpc → gRPC half of ipcrpc_gateway; the channel may be any ipcrpc
// Channel.
//
// Flow control: one message in flight per direction; a request is read from
// the client only after the previous one was accepted by the channel, and a
// response only after the client took the previous one, so a slow reader on
// either side slows the writer on the other.
//
// Threads: a call's handler is a bidi handler: it runs on the server's pool,
// or on the thread that read the call if its client sent every request and
// the half-close with the call's start (as an ipcrpc stub sends every unary
// and server-streaming call). A call whose client had sent everything when
// the handler started is forwarded by that thread alone; otherwise one more
// thread (from a WorkerPool, bridge/worker_pool.h) forwards the requests,
// and beyond `max_threads` such threads a call fails RESOURCE_EXHAUSTED.
//
// Thread-safety: thread-safe. Lifetime: must outlive the Server.
//
// Example:
//   ChannelForwardingService forward(*ipcrpc::CreateChannel("grpc:remote:50051"));
//   builder.AddListeningAddress("unix:/run/gw.sock").RegisterGenericService(&forward);

#ifndef IPCRPC_BRIDGE_CHANNEL_FORWARDING_SERVICE_H_
#define IPCRPC_BRIDGE_CHANNEL_FORWARDING_SERVICE_H_

#include <cstddef>
#include <memory>

#include "bridge/worker_pool.h"
#include "runtime/channel.h"
#include "runtime/generic_service.h"
#include "runtime/generic_stub.h"

namespace ipcrpc {
namespace grpc_bridge {

class ChannelForwardingService final : public GenericService {
 public:
  explicit ChannelForwardingService(std::shared_ptr<Channel> channel, size_t max_threads = 2048)
      : stub_(std::move(channel)), workers_(max_threads) {}

  absl::Status HandleCall(ServerContext* context, GenericServerReaderWriter* stream) override;

 private:
  GenericStub stub_;
  WorkerPool workers_;
};

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_CHANNEL_FORWARDING_SERVICE_H_
