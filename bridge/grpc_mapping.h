// ipcrpc gRPC bridge: how metadata, deadlines and statuses cross between
// ipcrpc and gRPC (docs/GRPC_BRIDGE.md is the written form of this file).
//
// Metadata: keys are the same on both sides ([a-z0-9_.-]+). Crossing either
// way drops the keys one side reserves — "grpc-*" (gRPC's own headers),
// "ipcrpc-*" (ipcrpc's) and HTTP/2 connection headers (DroppedKey) — and
// carries every other entry unchanged, in order. Values of keys ending in
// "-bin" are arbitrary bytes on both sides (gRPC base64-encodes them on the
// wire by itself); any other value must be printable ASCII (0x20–0x7E) to go
// to gRPC, else the call fails with INVALID_ARGUMENT / INTERNAL naming the
// key.
//
// Status: codes are the same numbers; the message is carried as is; a
// status's details (google.rpc.Status bytes in gRPC's grpc::Status
// error_details, "grpc-status-details-bin" on the wire) are the trailing
// metadata entry "grpc-status-details-bin" on the ipcrpc side.
//
// Thread-safety: free functions without state.

#ifndef IPCRPC_BRIDGE_GRPC_MAPPING_H_
#define IPCRPC_BRIDGE_GRPC_MAPPING_H_

#include <map>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runtime/byte_buffer.h"
#include "runtime/metadata.h"

namespace ipcrpc {
namespace grpc_bridge {

// The ipcrpc trailing-metadata key that carries a status's details.
inline constexpr absl::string_view kStatusDetailsKey = "grpc-status-details-bin";

// true for keys that never cross (see the header comment).
bool DroppedKey(absl::string_view key);

// OK if (key, value) can be sent as gRPC metadata; else INVALID_ARGUMENT
// naming the key and the rule.
absl::Status CheckGrpcMetadataEntry(absl::string_view key, absl::string_view value);

// ipcrpc → gRPC: every entry that crosses, in order. The first entry gRPC
// cannot carry makes it fail with INVALID_ARGUMENT; nothing is added then.
absl::Status AddClientMetadata(const Metadata& metadata, grpc::ClientContext* context);
absl::Status AddServerInitialMetadata(const Metadata& metadata, grpc::ServerContextBase* context);
// Trailing metadata except kStatusDetailsKey (that goes into the status).
absl::Status AddServerTrailingMetadata(const Metadata& metadata, grpc::ServerContextBase* context);

// gRPC → ipcrpc: every entry that crosses, appended to *out.
void AppendMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                    Metadata* out);

// Statuses. ToGrpcStatus takes the details from `trailing_metadata`'s
// kStatusDetailsKey (an OK status has none); FromGrpcStatus puts gRPC's
// details there.
grpc::Status ToGrpcStatus(const absl::Status& status, const Metadata& trailing_metadata);
absl::Status FromGrpcStatus(const grpc::Status& status, Metadata* trailing_metadata);

// Deadlines: absl::InfiniteFuture() ↔ gRPC's "none" (time_point::max()).
absl::Time FromGrpcDeadline(std::chrono::system_clock::time_point deadline);

// Messages: copies of the bytes.
grpc::ByteBuffer ToGrpcBuffer(const std::string& bytes);
// false if gRPC could not hand out the bytes (a compressed buffer it could
// not decompress).
bool FromGrpcBuffer(const grpc::ByteBuffer& buffer, std::string* bytes);

}  // namespace grpc_bridge
}  // namespace ipcrpc

#endif  // IPCRPC_BRIDGE_GRPC_MAPPING_H_
