// ipcrpc base: the kernel-verified identity of a connection's peer process.
//
// Filled from SO_PEERCRED when a unix-socket connection is made (and carried
// over to the transport a connection upgrades to). Reported to server code as
// ServerContext::peer() (runtime/server_context.h).
//
// Thread-safety: a plain value.

#ifndef IPCRPC_BASE_PEER_CREDENTIALS_H_
#define IPCRPC_BASE_PEER_CREDENTIALS_H_

#include <sys/types.h>

namespace ipcrpc {

// Identity of the peer process, as reported by the kernel when the connection
// was made. pid is 0 and uid/gid are -1 when the transport cannot tell.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

}  // namespace ipcrpc

#endif  // IPCRPC_BASE_PEER_CREDENTIALS_H_
