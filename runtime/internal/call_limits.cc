#include "runtime/internal/call_limits.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace ipcrpc::internal {
namespace {

absl::Status TooMuchMetadata(absl::string_view what, size_t entries, size_t bytes,
                             const MetadataLimits& limits) {
  if (entries > limits.max_entries) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " has ", entries,
                                                     " entries, more than the limit of ",
                                                     limits.max_entries, " (max_metadata_entries)"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " of ", bytes, " bytes (keys + values + ", kMetadataEntryOverhead,
      " per entry) exceeds the limit of ", limits.max_bytes, " bytes (max_metadata_bytes)"));
}

}  // namespace

size_t ControlFrameLimit(const MetadataLimits& limits) {
  const size_t max = std::numeric_limits<uint32_t>::max();
  return limits.max_bytes >= max - kControlFrameAllowance ? max
                                                          : limits.max_bytes + kControlFrameAllowance;
}

absl::Status CheckMetadataSize(const Metadata& metadata, const MetadataLimits& limits,
                               absl::string_view what) {
  size_t bytes = 0;
  for (const auto& [key, value] : metadata) {
    bytes += key.size() + value.size() + kMetadataEntryOverhead;
  }
  if (metadata.size() <= limits.max_entries && bytes <= limits.max_bytes) {
    return absl::OkStatus();
  }
  return TooMuchMetadata(what, metadata.size(), bytes, limits);
}

absl::Status MetadataFromWireWithin(
    const google::protobuf::RepeatedPtrField<wire::MetadataEntry>& entries,
    const MetadataLimits& limits, absl::string_view what, Metadata* out) {
  size_t bytes = 0;
  for (const wire::MetadataEntry& e : entries) {
    bytes += e.key().size() + e.value().size() + kMetadataEntryOverhead;
  }
  const size_t count = static_cast<size_t>(entries.size());
  if (count > limits.max_entries || bytes > limits.max_bytes) {
    return TooMuchMetadata(what, count, bytes, limits);
  }
  for (const wire::MetadataEntry& e : entries) {
    // Reserved "ipcrpc-" keys may come from newer peers: kept.
    if (e.key().empty()) return absl::DataLossError("metadata entry with an empty key");
    out->emplace(e.key(), e.value());
  }
  return absl::OkStatus();
}

absl::Status OversizedControlFrameError(const FrameHeader& header, const MetadataLimits& limits,
                                        absl::string_view side) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "frame of type ", static_cast<int>(header.type), " with ", header.length,
      " payload bytes exceeds the ", side, "'s control-frame limit of ", ControlFrameLimit(limits),
      " bytes (max_metadata_bytes ", limits.max_bytes, " + ", kControlFrameAllowance, ")"));
}

absl::Time DeadlineFromTimeoutMicros(uint64_t timeout_micros, absl::Time now) {
  if (timeout_micros == 0) return absl::InfiniteFuture();
  if (timeout_micros > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InfiniteFuture();
  }
  return now + absl::Microseconds(static_cast<int64_t>(timeout_micros));
}

std::string StatusMessageForWire(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  constexpr absl::string_view kCut = " [status message truncated]";
  return absl::StrCat(message.substr(0, kMaxStatusMessageBytes - kCut.size()), kCut);
}

absl::Status ParseCallStart(const Frame& frame, const MetadataLimits& limits, absl::Time now,
                            wire::CallStart* scratch, ParsedCallStart* call) {
  if (frame.oversized) return OversizedControlFrameError(frame.header, limits, "server");
  if (!scratch->ParseFromArray(frame.payload.data(), static_cast<int>(frame.payload.size()))) {
    return absl::InternalError("malformed CALL_START frame");
  }
  call->method = scratch->method();
  call->deadline = DeadlineFromTimeoutMicros(scratch->timeout_micros(), now);
  call->metadata.clear();
  absl::Status status =
      MetadataFromWireWithin(scratch->metadata(), limits, "request metadata", &call->metadata);
  if (absl::IsDataLoss(status)) return absl::InternalError(status.message());
  return status;
}

}  // namespace ipcrpc::internal
