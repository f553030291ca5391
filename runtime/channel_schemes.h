// ipcrpc: address schemes served by libraries outside the core.
//
// CreateChannel (runtime/ipcrpc.h) understands the local transports' schemes
// itself (connect/address.h). Other schemes — `grpc:host:port` and
// `grpcs:host:port`, served by the gRPC bridge (bridge/grpc_channel.h) — are
// added by the library that implements them, so that the core never links
// it: the library calls RegisterChannelScheme once (the bridge does it when
// it is linked in), and from then on CreateChannel("grpc:...") returns that
// library's channel. Generated stubs work with any Channel, so the address
// alone decides where a call goes.
//
// Without the library, CreateChannel fails for "grpc:" and "grpcs:"
// addresses with UNIMPLEMENTED naming the library to link.
//
// Thread-safety: both functions are thread-safe; registering is meant to
// happen at start-up. The registry is process-wide and holds only what
// RegisterChannelScheme was given.
//
// Example (what bridge/grpc_channel.cc does):
//   ipcrpc::RegisterChannelScheme("grpc", [](absl::string_view address,
//                                            const ipcrpc::ChannelOptions& options) {
//     return MakeGrpcChannel(address, options);
//   });

#ifndef IPCRPC_RUNTIME_CHANNEL_SCHEMES_H_
#define IPCRPC_RUNTIME_CHANNEL_SCHEMES_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/channel.h"

namespace ipcrpc {

// Makes a channel for a whole address ("grpc:host:port", scheme included).
using ChannelFactory = std::function<absl::StatusOr<std::shared_ptr<Channel>>(
    absl::string_view address, const ChannelOptions& options)>;

// CreateChannel hands every address "SCHEME:..." to `factory` from now on.
// A second registration of the same scheme replaces the first.
void RegisterChannelScheme(absl::string_view scheme, ChannelFactory factory);

// What CreateChannel uses: the registered factory's result for `address`;
// UNIMPLEMENTED naming the library for "grpc:"/"grpcs:" when the bridge is
// not linked; NOT_FOUND for any other unregistered scheme (CreateChannel then
// treats the address as a local one).
absl::StatusOr<std::shared_ptr<Channel>> CreateChannelForScheme(absl::string_view address,
                                                                const ChannelOptions& options);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CHANNEL_SCHEMES_H_
