// ipcrpc internal: what one call may carry besides its messages.
//
// The limits a receiver applies to a call's metadata and to the control
// frames that carry it (CALL_START, HEADERS, TRAILERS, ...), and the parsing
// of CALL_START that applies them, so that a peer's frame costs memory and
// CPU in proportion to these limits, never to what its header declares.
// docs/PROTOCOL.md, "Limits", is the specification.
//
// Metadata is measured as gRPC measures headers (RFC 7541 §4.1): each entry
// counts its key, its value and 32 bytes. So the default of 8 KiB allows
// e.g. one 8,150-byte value or 200 short entries, and code ported from gRPC
// meets the same limit.
//
// Thread-safety: plain functions; ParseCallStart's scratch message belongs to
// the caller.
//
// Example (server, on a CALL_START frame):
//   thread_local wire::CallStart scratch;
//   ParsedCallStart call;
//   absl::Status refusal = ParseCallStart(frame, limits, absl::Now(), &scratch, &call);
//   if (!refusal.ok()) return RefuseCall(frame.header.stream_id, refusal);

#ifndef IPCRPC_RUNTIME_INTERNAL_CALL_LIMITS_H_
#define IPCRPC_RUNTIME_INTERNAL_CALL_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/metadata.h"
#include "wire/frame.h"

namespace ipcrpc::internal {

// Bytes each metadata entry counts beyond its key and value (as in gRPC).
inline constexpr size_t kMetadataEntryOverhead = 32;
// Room in a control frame beyond its metadata: the method path, the timeout,
// a status message (kMaxStatusMessageBytes) and the protobuf encoding, which
// never takes more than the 32 bytes an entry is counted for.
inline constexpr size_t kControlFrameAllowance = 16 * 1024;
// A status message longer than this is cut (and marked so) before it is sent.
inline constexpr size_t kMaxStatusMessageBytes = 8 * 1024;

struct MetadataLimits {
  size_t max_bytes;    // sum of key + value + kMetadataEntryOverhead
  size_t max_entries;  // entries
};

// The limits in ServerOptions or ChannelOptions.
template <typename Options>
MetadataLimits MetadataLimitsOf(const Options& options) {
  return {options.max_metadata_bytes, options.max_metadata_entries};
}

// Largest payload of a frame other than MESSAGE that a side with `limits`
// accepts; a larger one is discarded unread (FrameReader) and the call it
// belongs to fails RESOURCE_EXHAUSTED.
size_t ControlFrameLimit(const MetadataLimits& limits);

// RESOURCE_EXHAUSTED naming `what` ("request metadata", ...) and the limit
// if `metadata` exceeds `limits`.
absl::Status CheckMetadataSize(const Metadata& metadata, const MetadataLimits& limits,
                               absl::string_view what);

// Copies wire entries into *out after checking them against `limits`
// (RESOURCE_EXHAUSTED, nothing copied) and for empty keys (DATA_LOSS).
absl::Status MetadataFromWireWithin(
    const google::protobuf::RepeatedPtrField<wire::MetadataEntry>& entries,
    const MetadataLimits& limits, absl::string_view what, Metadata* out);

// RESOURCE_EXHAUSTED for a control frame that was too large to be read.
absl::Status OversizedControlFrameError(const FrameHeader& header, const MetadataLimits& limits,
                                        absl::string_view side);

// The server's deadline for a call whose CALL_START arrived at `now`:
// 0 is no deadline, and so is any timeout too large to be represented (it
// lies hundreds of thousands of years ahead; a u64 of microseconds does not
// fit absl::Duration's int64 conversion above 2^63).
absl::Time DeadlineFromTimeoutMicros(uint64_t timeout_micros, absl::Time now);

// `message`, cut to kMaxStatusMessageBytes (with a note) if longer.
std::string StatusMessageForWire(absl::string_view message);

// CALL_START, parsed and checked: the method (a view into the scratch
// message, valid until its next use), the deadline and the metadata.
struct ParsedCallStart {
  absl::string_view method;
  absl::Time deadline = absl::InfiniteFuture();
  Metadata metadata;
};

// Parses a CALL_START frame into *call using *scratch (reused by the caller
// so that its memory is). RESOURCE_EXHAUSTED if the frame was oversized or
// the metadata exceeds `limits`; INTERNAL if it is malformed. The refusal
// goes to the client in TRAILERS; the connection stays usable.
absl::Status ParseCallStart(const Frame& frame, const MetadataLimits& limits, absl::Time now,
                            wire::CallStart* scratch, ParsedCallStart* call);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_CALL_LIMITS_H_
