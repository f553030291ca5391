// ipcrpc wire: refusing a connection before HELLO.
//
// A server that will not serve a peer (its access policy refuses it) sends
// one GOAWAY frame on stream 0 as the first frame of the connection, with the
// status code and reason, and closes (docs/PROTOCOL.md, "Refusing a
// connection"). A client reading the first frame of a connection — HELLO, or
// TRANSPORT_OFFER during negotiation — that finds this GOAWAY instead ends
// the connection attempt with that status.
//
// Thread-safety: free functions.

#ifndef IPCRPC_WIRE_REFUSAL_H_
#define IPCRPC_WIRE_REFUSAL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ipcrpc::internal {

// Appends the GOAWAY frame that refuses a connection with `status` (not OK).
void AppendRefusalFrame(const absl::Status& status, std::string* out);

// The status a refusing GOAWAY payload carries, prefixed with `who` (e.g. the
// address): e.g. PERMISSION_DENIED "unix:/run/x.sock refused the connection:
// ...". A malformed payload, or one that carries no error, is UNAVAILABLE.
absl::Status RefusalStatus(absl::string_view goaway_payload, absl::string_view who);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_WIRE_REFUSAL_H_
