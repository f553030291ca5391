// libFuzzer target: CALL_START, HEADERS and TRAILERS payloads and the
// metadata in them, parsed with the receiver's limits
// (runtime/internal/call_limits.h) exactly as the server and the client do.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/internal/call_limits.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipcrpc;
  using namespace ipcrpc::internal;
  const MetadataLimits limits{8192, 256};
  if (size > ControlFrameLimit(limits)) return 0;  // the reader discards these unread
  Frame frame;
  frame.header.type = FrameType::kCallStart;
  frame.header.length = static_cast<uint32_t>(size);
  frame.payload.assign(reinterpret_cast<const char*>(data), size);

  static wire::CallStart scratch;  // reused, as the server reuses it
  ParsedCallStart call;
  const absl::Time now = absl::Now();
  absl::Status status = ParseCallStart(frame, limits, now, &scratch, &call);
  if (status.ok()) {
    if (call.deadline < now) __builtin_trap();  // a deadline never lies in the past
    if (!CheckMetadataSize(call.metadata, limits, "m").ok()) __builtin_trap();
    for (const auto& entry : call.metadata) {
      ValidateMetadataKey(entry.first).IgnoreError();
    }
  } else if (!absl::IsInternal(status) && !absl::IsResourceExhausted(status)) {
    __builtin_trap();
  }

  wire::Headers headers;
  if (headers.ParseFromString(frame.payload)) {
    Metadata out;
    MetadataFromWireWithin(headers.metadata(), limits, "initial metadata", &out).IgnoreError();
  }
  wire::Trailers trailers;
  if (trailers.ParseFromString(frame.payload)) {
    Metadata out;
    MetadataFromWireWithin(trailers.metadata(), limits, "trailing metadata", &out).IgnoreError();
    if (StatusMessageForWire(trailers.message()).size() > kMaxStatusMessageBytes) __builtin_trap();
  }
  return 0;
}
