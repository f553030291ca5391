// ipcrpc: from an address string to a transport.
//
// The one place that knows every transport: it parses an address and makes
// the matching Connector (client side) or Listener (server side). The runtime
// itself never depends on a concrete transport.
//
// Addresses understood:
//   unix:PATH              unix-domain socket file, e.g. unix:/run/app.sock
//   unix-abstract:NAME     Linux abstract-namespace unix socket
// Anything else fails with INVALID_ARGUMENT naming the scheme and listing the
// supported ones.
//
// Thread-safety: free functions, no shared state.

#ifndef IPCRPC_TRANSPORTS_ADDRESS_H_
#define IPCRPC_TRANSPORTS_ADDRESS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transports/transport.h"

namespace ipcrpc {

absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(absl::string_view address);
absl::StatusOr<std::unique_ptr<Listener>> MakeListener(absl::string_view address);

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_ADDRESS_H_
