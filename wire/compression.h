// ipcrpc internal: compressed MESSAGE payloads (docs/PROTOCOL.md §2,
// "Compressed messages").
//
// The low four bits of a MESSAGE frame's flags are the payload's
// compression algorithm id (0: not compressed, 1: gzip); HELLO's
// accept_compression is the bit set of ids the sender can decompress.
// Decompression is bounded: it never produces (or allocates for) more than
// the caller's limit, whatever the input claims, so a "zip bomb" costs at
// most that limit.
//
// Thread-safety: plain functions.

#ifndef IPCRPC_WIRE_COMPRESSION_H_
#define IPCRPC_WIRE_COMPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ipcrpc::internal {

// MESSAGE flags: the compression algorithm id.
inline constexpr uint16_t kFlagCompressionMask = 0x000F;
inline constexpr uint8_t kCompressionNone = 0;
inline constexpr uint8_t kCompressionGzip = 1;

// The algorithm id of a MESSAGE frame with `flags`.
inline uint8_t CompressionOf(uint16_t flags) {
  return static_cast<uint8_t>(flags & kFlagCompressionMask);
}

// Hello.accept_compression of an implementation that decompresses every
// algorithm this one knows.
inline constexpr uint32_t kSupportedCompression = 1u << kCompressionGzip;

// Whether a peer whose HELLO said `accept_compression` can read `algorithm`.
inline bool PeerAccepts(uint32_t accept_compression, uint8_t algorithm) {
  return algorithm != kCompressionNone && algorithm <= 15 &&
         (accept_compression & (1u << algorithm)) != 0;
}

// Compresses `in` with `algorithm` into *out. false if it failed or did not
// make `in` smaller (then send it uncompressed); *out is unspecified then.
bool Compress(uint8_t algorithm, absl::string_view in, std::string* out);

// Decompresses `in` into *out (replaced). RESOURCE_EXHAUSTED if the result
// would be larger than `max_bytes` (it stops there); INTERNAL if `in` is
// not a complete, valid stream of that algorithm (corrupt, truncated, or
// followed by other bytes); UNIMPLEMENTED for an algorithm it does not know.
absl::Status Decompress(uint8_t algorithm, absl::string_view in, size_t max_bytes,
                        std::string* out);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_WIRE_COMPRESSION_H_
