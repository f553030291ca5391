// ipcrpc: message compression algorithms.
//
// Messages can be sent compressed, as in gRPC: per channel
// (ChannelOptions::default_compression_algorithm), per call
// (ClientContext::set_compression_algorithm,
// ServerContext::set_compression_algorithm) and per server
// (ServerOptions::default_compression_algorithm). Off by default: on one
// machine, copying bytes is usually cheaper than compressing them.
//
// Compression is negotiated per connection (each side's HELLO says what it
// can decompress, docs/PROTOCOL.md §2 "Compressed messages"): a peer that
// cannot decompress an algorithm is sent uncompressed messages instead, so
// asking for compression never breaks a call. A message is also sent
// uncompressed when compressing does not make it smaller. Received messages
// are decompressed whatever this side sends; the receive limit
// (max_receive_message_size / max_message_size) applies to the decompressed
// size.
//
// Example:
//   ipcrpc::ClientContext ctx;
//   ctx.set_compression_algorithm(ipcrpc::CompressionAlgorithm::kGzip);

#ifndef IPCRPC_RUNTIME_COMPRESSION_H_
#define IPCRPC_RUNTIME_COMPRESSION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ipcrpc {

// The values are the algorithm ids of the wire protocol.
enum class CompressionAlgorithm : uint8_t {
  kNone = 0,
  kGzip = 1,  // RFC 1952, zlib
};

// "identity", "gzip" (gRPC's names).
absl::string_view CompressionAlgorithmName(CompressionAlgorithm algorithm);

// The algorithm named `name` ("identity" or "gzip"; also "none");
// INVALID_ARGUMENT naming the choices otherwise.
absl::StatusOr<CompressionAlgorithm> ParseCompressionAlgorithm(absl::string_view name);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_COMPRESSION_H_
