#include "bridge/grpc_server_bridge.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "bridge/grpc_forwarding_service.h"
#include "transports/unix_socket.h"

namespace ipcrpc {
namespace grpc_bridge {

absl::StatusOr<std::unique_ptr<GrpcBridge>> ServeOverGrpc(
    Server& server, const std::string& address,
    std::shared_ptr<grpc::ServerCredentials> credentials, const GrpcBridgeOptions& options) {
  if (credentials == nullptr) {
    return absl::InvalidArgumentError("ServeOverGrpc: credentials are null (use "
                                      "grpc::InsecureServerCredentials() for none)");
  }
  auto pair = MakeSocketPair();
  if (!pair.ok()) return pair.status();
  absl::Status added = server.AddTransport(std::move(pair->first));
  if (!added.ok()) return added;
  ChannelOptions channel_options;
  channel_options.max_send_message_size = options.max_message_size;
  channel_options.max_receive_message_size = options.max_message_size;
  // Shared buffers cannot cross to gRPC: the served handlers are never
  // given one to send (AllocateSharedBuffer fails FAILED_PRECONDITION).
  channel_options.shared_buffers = false;
  // Descriptors cannot reach a gRPC client: a handler's response that names
  // one fails FAILED_PRECONDITION.
  channel_options.max_fds_per_message = 0;
  std::shared_ptr<Channel> channel =
      CreateChannelFromTransport(std::move(pair->second), channel_options);

  std::unique_ptr<GrpcBridge> bridge(new GrpcBridge());
  bridge->service_ =
      std::make_unique<ForwardingGenericService>(std::move(channel), options.max_concurrent_calls);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, std::move(credentials), &bridge->port_);
  // Another process on the same port must fail us, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_size));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_size));
  builder.RegisterCallbackGenericService(bridge->service_.get());
  bridge->grpc_server_ = builder.BuildAndStart();
  if (bridge->grpc_server_ == nullptr || bridge->port_ == 0) {
    bridge->grpc_server_.reset();
    return absl::UnavailableError(
        absl::StrCat("gRPC bridge: cannot listen on \"", address,
                     "\" (in use, or not a host:port gRPC can bind)"));
  }
  return bridge;
}

void GrpcBridge::Shutdown(absl::Time deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
    grpc_server_->Wait();
  }
}

GrpcBridge::~GrpcBridge() {
  Shutdown();
  grpc_server_.reset();
  service_.reset();  // waits for the calls' threads
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
