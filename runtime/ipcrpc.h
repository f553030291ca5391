// ipcrpc: the one header an application includes.
//
// ipcrpc is a gRPC-style RPC framework for processes on one Linux machine.
// Generated stubs (`foo.ipcrpc.pb.h`) plus this header are all a client or a
// server needs:
//
//   // Client
//   auto channel = ipcrpc::CreateChannel("unix:/run/greeter.sock");
//   if (!channel.ok()) return channel.status();
//   demo::Greeter::Stub stub(*channel);
//   ipcrpc::ClientContext ctx;
//   demo::HelloReply reply;
//   absl::Status status = stub.SayHello(&ctx, request, &reply);
//
//   // Server: see runtime/server.h.
//
// Thread-safety: CreateChannel is thread-safe; see each type for its own.

#ifndef IPCRPC_RUNTIME_IPCRPC_H_
#define IPCRPC_RUNTIME_IPCRPC_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"   // IWYU pragma: export
#include "connect/spawn.h"        // IWYU pragma: export
#include "runtime/channel.h"         // IWYU pragma: export
#include "runtime/channel_schemes.h" // IWYU pragma: export
#include "runtime/client_context.h"  // IWYU pragma: export
#include "runtime/config.h"          // IWYU pragma: export
#include "runtime/generic_service.h" // IWYU pragma: export
#include "runtime/generic_stub.h"    // IWYU pragma: export
#include "runtime/health.h"          // IWYU pragma: export
#include "runtime/interceptor.h"     // IWYU pragma: export
#include "runtime/reflection.h"      // IWYU pragma: export
#include "runtime/server.h"          // IWYU pragma: export
#include "runtime/server_context.h"  // IWYU pragma: export

namespace ipcrpc {

// A channel to `target`: an address ("unix:/run/app.sock", "shm:/run/app.sock",
// "auto:@app"; see connect/address.h) or a name defined in the config
// file (runtime/config.h). The config file and IPCRPC_TRANSPORT may change
// the transport without a rebuild. Only a malformed target, an unsupported
// transport or a broken config file fails here (with a status naming it);
// the connection is made on the first call, and a server that is not there
// makes that call fail with UNAVAILABLE. Addresses of schemes that other
// libraries register (runtime/channel_schemes.h; "grpc:host:port" once the
// gRPC bridge is linked) get that library's channel.
absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(
    absl::string_view target, const ChannelOptions& options = {});

// As above with an explicit configuration instead of IPCRPC_CONFIG
// (IPCRPC_TRANSPORT still applies).
absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(
    absl::string_view target, const ChannelOptions& options, const config::Config& config);

namespace experimental {

// CreateChannel(target, options) whose calls run the interceptors
// `creators` make (runtime/interceptor.h), in order; grpcpp's
// experimental::CreateCustomChannelWithInterceptors. The channel owns them.
absl::StatusOr<std::shared_ptr<Channel>> CreateChannelWithInterceptors(
    absl::string_view target, const ChannelOptions& options,
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators);

}  // namespace experimental
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_IPCRPC_H_
