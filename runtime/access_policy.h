// ipcrpc: who may connect to a server.
//
// A server checks every process that connects to its listening socket
// against an AccessPolicy, using the identity the kernel reports for the
// socket (SO_PEERCRED: pid, uid, gid at connect time), before anything else
// happens on the connection: before transport negotiation (so a refused peer
// never gets a shared-memory ring, FIFOs or queues) and before HELLO (so no
// handler runs). A refused client's call fails with PERMISSION_DENIED and the
// policy's reason. The policy applies to every transport a client can
// negotiate, because every negotiation starts on that socket.
//
// The default lets in the server's own user and root, which is also what a
// socket file with the default mode (0600, ServerOptions::socket_mode)
// allows — but unlike the mode it also covers abstract addresses
// (unix:@name), which have no file and no permissions.
//
// Connections handed to a server directly (ServerBuilder::AddTransport, a
// spawned worker's socketpair) are not checked: whoever made them chose the
// peer. docs/SECURITY.md says what a policy does and does not protect.
//
// Thread-safety: a value; Check is const and may run on any thread.
//
// Example:
//   ipcrpc::ServerOptions options;
//   options.access_policy.allowed_uids = {1000};       // and the server's user
//   options.access_policy.allowed_gids = {getgid()};   // anyone in our group
//   builder.SetOptions(options);

#ifndef IPCRPC_RUNTIME_ACCESS_POLICY_H_
#define IPCRPC_RUNTIME_ACCESS_POLICY_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/peer_credentials.h"

namespace ipcrpc {

struct AccessPolicy {
  // Everyone who can reach the socket. Overrides every rule below.
  bool allow_any_peer = false;
  // The server process's effective uid, and uid 0.
  bool allow_same_uid = true;
  bool allow_root = true;
  // Further users and groups (a peer matches by its uid, or by its primary
  // gid as SO_PEERCRED reports it).
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  // If not empty, a peer must ALSO run one of these executables (absolute
  // paths, compared with /proc/PID/exe of the peer's pid). The pid is the
  // connecting process's at connect time; a peer that exits and whose pid is
  // reused before the check is refused or misjudged, so combine this with a
  // uid/gid rule rather than relying on it alone.
  std::vector<std::string> allowed_executables;
  // An extra check, run after the rules above let the peer in; a non-OK
  // status refuses it (PERMISSION_DENIED with that message).
  std::function<absl::Status(const PeerCredentials&)> custom;

  // OK if `peer` may connect; PERMISSION_DENIED naming the peer otherwise.
  absl::Status Check(const PeerCredentials& peer) const;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_ACCESS_POLICY_H_
