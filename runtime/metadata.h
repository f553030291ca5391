// ipcrpc: call metadata and peer identity.
//
// Metadata is an ordered multimap of ASCII-lowercase keys to opaque values,
// sent at the start of a call (client → server, and the server's initial
// metadata) and with the final status (the server's trailing metadata).
// Keys must match [a-z0-9_.-]+ and must not start with "ipcrpc-" (reserved);
// values are arbitrary bytes. Invalid keys make the call fail with
// INVALID_ARGUMENT before anything is sent.
//
// PeerCredentials is the kernel-verified identity of the process at the other
// end of a connection (SO_PEERCRED on unix sockets).

#ifndef IPCRPC_RUNTIME_METADATA_H_
#define IPCRPC_RUNTIME_METADATA_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/peer_credentials.h"  // PeerCredentials, part of this API

namespace ipcrpc {

using Metadata = std::multimap<std::string, std::string>;

// OK if `key` is a valid metadata key (see above), INVALID_ARGUMENT otherwise.
absl::Status ValidateMetadataKey(absl::string_view key);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_METADATA_H_
