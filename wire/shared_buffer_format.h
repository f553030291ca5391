// ipcrpc wire: the byte layouts of shared buffers (docs/PROTOCOL.md §13).
//
// Writer and reader share these constants and codecs: the SEGMENT frame's
// payload, the SEGMENT_RETIRE / BUFFER_RELEASE lists of u32, and the buffer
// table a MESSAGE with kFlagSharedBuffers carries at the end of its payload
// (before the descriptor table of §10, if any):
//
//   message bytes | entry_0 ... entry_{N-1} (24 bytes each) | N (u32) | fd table
//
// All integers little-endian. Thread-safety: pure functions.

#ifndef IPCRPC_WIRE_SHARED_BUFFER_FORMAT_H_
#define IPCRPC_WIRE_SHARED_BUFFER_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ipcrpc::internal {

// Segment ids and buffer keys are chosen by the owner in [1, kMaxSharedId].
// In a received message, a SharedBuffer handle has kReceivedHandleBit set.
inline constexpr uint32_t kMaxSharedId = 0x7FFFFFFF;
inline constexpr uint32_t kReceivedHandleBit = 0x80000000;

// SEGMENT payload.
struct SegmentAnnouncement {
  uint32_t segment = 0;  // 1..kMaxSharedId, never reused on a connection
  uint64_t size = 0;     // the memfd's size (st_size), bytes
};
inline constexpr size_t kSegmentPayloadBytes = 16;  // u32 segment, u32 0, u64 size

// One entry of a MESSAGE's buffer table.
struct BufferReference {
  uint32_t key = 0;      // the owner's buffer key; the message's SharedBuffer.handle
  uint32_t segment = 0;  // an announced segment of the owner
  uint64_t offset = 0;   // within the segment
  uint64_t length = 0;   // bytes; offset + length <= segment size
};
inline constexpr size_t kBufferEntryBytes = 24;  // u32 key, u32 segment, u64 offset, u64 length
inline constexpr size_t kBufferCountBytes = 4;   // u32 N after the entries
// The most entries one MESSAGE may carry (a receiver refuses more).
inline constexpr uint32_t kMaxBuffersPerMessage = 4096;

static_assert(kSegmentPayloadBytes == sizeof(uint32_t) * 2 + sizeof(uint64_t));
static_assert(kBufferEntryBytes == sizeof(uint32_t) * 2 + sizeof(uint64_t) * 2);

void EncodeSegmentAnnouncement(const SegmentAnnouncement& s, std::string* out);
// false unless `payload` is exactly kSegmentPayloadBytes.
bool DecodeSegmentAnnouncement(absl::string_view payload, SegmentAnnouncement* s);

// SEGMENT_RETIRE and BUFFER_RELEASE payloads: u32 values.
void EncodeU32List(const std::vector<uint32_t>& values, std::string* out);
// false if the payload's size is not a multiple of 4.
bool DecodeU32List(absl::string_view payload, std::vector<uint32_t>* values);

// Appends the table (entries and count) to *out.
void EncodeBufferTable(const std::vector<BufferReference>& refs, std::string* out);
// Splits `payload` (a MESSAGE payload whose descriptor table, if any, has
// been removed) into the message bytes and the table's entries. false if the
// count does not fit the payload or exceeds kMaxBuffersPerMessage.
bool DecodeBufferTable(absl::string_view payload, absl::string_view* message,
                       std::vector<BufferReference>* refs);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_WIRE_SHARED_BUFFER_FORMAT_H_
