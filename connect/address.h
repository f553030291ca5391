// ipcrpc: from an address string to a transport.
//
// The one place that knows every transport: it parses an address, builds
// the table of transports a connection can move to, and makes the matching
// Connector (client side) or Listener (server side). The runtime itself
// never depends on a concrete transport.
//
// An address is TRANSPORT:SOCKET, where SOCKET is the server's unix socket
// (a path, or @name for the abstract namespace) and TRANSPORT one of
//
//   unix      the unix socket itself carries the calls
//   fifo      a pair of named pipes             (transports/fifo/)
//   shm       a shared-memory ring, futex wake  (transports/shm/)
//   shm+sem   a shared-memory ring, semaphore   (transports/shm/)
//   msgq      SysV message queues               (transports/msgq/)
//   auto      the fastest of these both sides allow
//
// e.g. "unix:/run/app.sock", "shm:/run/app.sock", "auto:@app";
// "unix-abstract:NAME" is the same as "unix:@NAME". Every server listens on
// a unix socket, and a client moves its connection to the transport it asks
// for during connection set-up (connect/negotiation.h). A listening
// address's TRANSPORT does not restrict anything: which transports clients
// may choose is the server's `allowed` list.
//
// Thread-safety: free functions, no shared state.

#ifndef IPCRPC_CONNECT_ADDRESS_H_
#define IPCRPC_CONNECT_ADDRESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connect/negotiation.h"
#include "proto/ipcrpc/config.pb.h"
#include "transports/transport.h"
#include "transports/unix_socket.h"

namespace ipcrpc {

struct ParsedAddress {
  std::string transport;       // "unix", "fifo", "shm", "shm+sem", "msgq", "auto"
  std::string socket_address;  // "unix:/path" or "unix-abstract:name"
};

// INVALID_ARGUMENT naming the problem (no scheme, unknown transport, empty
// socket) for anything else.
absl::StatusOr<ParsedAddress> ParseAddress(absl::string_view address);

// Every transport name ParseAddress accepts, in "auto" preference order
// first ("shm", "shm+sem", "unix", "msgq", "fifo"), then "auto".
const std::vector<std::string>& KnownTransports();

// A connector for `address`; `transport`, if not empty, replaces the
// address's TRANSPORT (configuration and IPCRPC_TRANSPORT do that).
absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(
    absl::string_view address, absl::string_view transport = "",
    const config::TransportTuning& tuning = {});

// A listener on `address`'s unix socket that lets clients choose among
// `allowed` transport names (empty: all of them). The socket file gets
// `socket_mode`; a peer that `admit` refuses is turned away before any
// negotiation (see NegotiatingListener).
absl::StatusOr<std::unique_ptr<Listener>> MakeListener(
    absl::string_view address, const std::vector<std::string>& allowed = {},
    const config::TransportTuning& tuning = {}, mode_t socket_mode = kDefaultSocketMode,
    PeerAdmission admit = nullptr);

// Moves an existing client-side connection (e.g. WorkerProcess::TakeSocket())
// to `transport` ("shm", "auto", ...); the server end must have been wrapped
// with AcceptUpgrades. The socket stays open as the liveness channel.
absl::StatusOr<std::unique_ptr<Transport>> UpgradeConnection(
    std::unique_ptr<UnixSocketTransport> socket, absl::string_view transport,
    const config::TransportTuning& tuning = {}, absl::Duration timeout = absl::Seconds(5));

// The server end of an existing connection (e.g. TakeInheritedSocket()),
// letting the peer move it to one of `allowed` (empty: all transports).
absl::StatusOr<std::unique_ptr<Transport>> AcceptUpgrades(
    std::unique_ptr<UnixSocketTransport> socket, const std::vector<std::string>& allowed = {},
    const config::TransportTuning& tuning = {});

}  // namespace ipcrpc

#endif  // IPCRPC_CONNECT_ADDRESS_H_
