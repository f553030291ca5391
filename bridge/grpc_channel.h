// ipcrpc gRPC bridge: ipcrpc channels to gRPC servers ("grpc:" addresses).
//
// Linking this library (Bazel: "@ipcrpc//bridge:grpc_channel") teaches
// ipcrpc::CreateChannel two more address schemes:
//
//   grpc:HOST:PORT    plain-text gRPC (HTTP/2 over TCP) to HOST:PORT
//   grpcs:HOST:PORT   gRPC over TLS; the server's certificate is checked
//                     against the system's roots, or the PEM file that
//                     IPCRPC_GRPC_ROOT_CERTS names, or the roots given to
//                     RegisterGrpcAddressSchemes
//
// (HOST:PORT is any gRPC target: "localhost:50051", "[::1]:50051",
// "dns:///svc.example:443"). Generated ipcrpc stubs, GenericStub and
// ClientContext work unchanged over such a channel — all four kinds,
// metadata (incl. "-bin"), deadlines, wait_for_ready, cancellation (also a
// parent server call's, via ClientContext::FromServerContext), status code,
// message and details (docs/GRPC_BRIDGE.md). The address decides, not the
// code. ClientContext::peer() is empty (a remote process has no local
// credentials); transport() is "grpc:HOST:PORT".
//
// The library registers the schemes when it is loaded (runtime/channel_schemes.h);
// RegisterGrpcAddressSchemes does it again with other options. Without the
// library, CreateChannel("grpc:...") fails with UNIMPLEMENTED saying which
// dependency to add.
//
// Thread-safety: a channel is thread-safe, as every ipcrpc Channel.
//
// Example:
//   auto channel = ipcrpc::CreateChannel("grpc:localhost:50051");
//   demo::Greeter::Stub stub(*channel);      // the generated ipcrpc stub
//   ipcrpc::ClientContext ctx;
//   ctx.set_timeout(absl::Seconds(1));
//   absl::Status status = stub.SayHello(&ctx, request, &reply);

#ifndef IPCRPC_BRIDGE_GRPC_CHANNEL_H_
#define IPCRPC_BRIDGE_GRPC_CHANNEL_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/channel.h"

namespace ipcrpc {
namespace grpc_bridge {

// The environment variable naming a PEM file of root certificates for grpcs:.
inline constexpr char kRootCertsEnv[] = "IPCRPC_GRPC_ROOT_CERTS";

struct GrpcAddressOptions {
  // PEM root certificates for grpcs: addresses; empty: IPCRPC_GRPC_ROOT_CERTS
  // if set, else the system's roots.
  std::string root_certs_pem;
};

// (Re-)registers "grpc" and "grpc" + "s" with CreateChannel.
void RegisterGrpcAddressSchemes(const GrpcAddressOptions& options = {});

// A channel for a "grpc:" or "grpcs:" address (what CreateChannel returns
// for one). INVALID_ARGUMENT for another scheme or an empty target;
// FAILED_PRECONDITION if IPCRPC_GRPC_ROOT_CERTS names an unreadable file.
absl::StatusOr<std::shared_ptr<Channel>> CreateGrpcAddressChannel(
    absl::string_view address, const ChannelOptions& options = {},
    const GrpcAddressOptions& grpc_options = {});

// An ipcrpc channel over an existing gRPC channel (own credentials, channel
// arguments, interceptors). `name` is what Channel::target() reports.
std::shared_ptr<Channel> WrapGrpcChannel(std::shared_ptr<grpc::Channel> channel,
                                         std::string name);

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_GRPC_CHANNEL_H_
