// ipcrpc gRPC bridge: serve an ipcrpc server's services over gRPC too.
//
// ServeOverGrpc(server, "0.0.0.0:50051", credentials) makes every service
// registered on `server` — typed, generic and health — reachable by any gRPC
// client on that port, with the same handlers: all four RPC kinds, metadata
// both ways (including "-bin" keys), deadlines, cancellation, status code,
// message and details (docs/GRPC_BRIDGE.md has the exact mapping). The
// bridge is a real gRPC 1.51 server (insecure or TLS credentials, as
// grpc::ServerBuilder takes them) whose one generic service forwards each
// call, byte for byte, into `server` over a socketpair inside this process
// (Server::AddTransport): handlers cannot tell a bridged call from a local
// one, except that ServerContext::peer() is this process.
//
// Security: ipcrpc's access policy (peer uid/gid) does not apply to gRPC
// callers — they come in through this process. Use TLS credentials (and
// client certificates) to decide who may call over the network.
//
// Thread-safety: GrpcBridge's methods are thread-safe. Lifetime: `server`
// must outlive the GrpcBridge; shut the bridge down first (or destroy it),
// then the server.
//
// Example:
//   auto server = builder.BuildAndStart();              // ipcrpc, as usual
//   auto bridge = ipcrpc::grpc_bridge::ServeOverGrpc(
//       **server, "0.0.0.0:50051", grpc::InsecureServerCredentials());
//   if (!bridge.ok()) return bridge.status();
//   ... (*bridge)->port() is the port (useful with ":0") ...
//   (*bridge)->Shutdown();  (*server)->Shutdown();

#ifndef IPCRPC_BRIDGE_GRPC_SERVER_BRIDGE_H_
#define IPCRPC_BRIDGE_GRPC_SERVER_BRIDGE_H_

#include <cstddef>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/channel.h"
#include "runtime/server.h"

namespace ipcrpc {
namespace grpc_bridge {

class ForwardingGenericService;

struct GrpcBridgeOptions {
  // Largest message accepted from gRPC clients and sent to them.
  size_t max_message_size = kDefaultMaxMessageSize;
  // Calls forwarded at once (each holds two threads); more fail with
  // RESOURCE_EXHAUSTED.
  size_t max_concurrent_calls = 1000;
};

class GrpcBridge {
 public:
  ~GrpcBridge();  // Shutdown() with an immediate deadline if not called
  GrpcBridge(const GrpcBridge&) = delete;
  GrpcBridge& operator=(const GrpcBridge&) = delete;

  // The TCP port gRPC listens on (the one chosen, for an address ending ":0").
  int port() const { return port_; }

  // Stops accepting calls, lets calls in flight finish until `deadline`,
  // then cancels the rest. Calls after the first return at once.
  void Shutdown(absl::Time deadline = absl::Now());

 private:
  friend absl::StatusOr<std::unique_ptr<GrpcBridge>> ServeOverGrpc(
      Server& server, const std::string& address,
      std::shared_ptr<grpc::ServerCredentials> credentials, const GrpcBridgeOptions& options);
  GrpcBridge() = default;

  std::unique_ptr<ForwardingGenericService> service_;  // outlives grpc_server_
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool shut_down_ = false;
  std::mutex mu_;
};

// Serves `server`'s services on the gRPC `address` ("0.0.0.0:50051",
// "[::]:0", "localhost:50051", as grpc::ServerBuilder::AddListeningPort).
// Fails with UNAVAILABLE if gRPC cannot listen there, INVALID_ARGUMENT for
// null credentials, FAILED_PRECONDITION if `server` is shut down.
absl::StatusOr<std::unique_ptr<GrpcBridge>> ServeOverGrpc(
    Server& server, const std::string& address,
    std::shared_ptr<grpc::ServerCredentials> credentials, const GrpcBridgeOptions& options = {});

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_GRPC_SERVER_BRIDGE_H_
