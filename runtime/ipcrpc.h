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

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/channel.h"         // IWYU pragma: export
#include "runtime/client_context.h"  // IWYU pragma: export
#include "runtime/server.h"          // IWYU pragma: export
#include "runtime/server_context.h"  // IWYU pragma: export
#include "runtime/status_macros.h"   // IWYU pragma: export
#include "transports/spawn.h"        // IWYU pragma: export

namespace ipcrpc {

// A channel to the server at `address` ("unix:/path", "unix-abstract:name";
// see transports/address.h). Only a malformed or unsupported address fails
// here (INVALID_ARGUMENT); the connection is made on the first call, and a
// server that is not there makes that call fail with UNAVAILABLE.
absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(
    absl::string_view address, const ChannelOptions& options = {});

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_IPCRPC_H_
