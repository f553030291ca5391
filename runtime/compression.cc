#include "runtime/compression.h"

namespace ipcrpc {

absl::string_view CompressionAlgorithmName(CompressionAlgorithm algorithm) {
  switch (algorithm) {
    case CompressionAlgorithm::kNone:
      return "identity";
    case CompressionAlgorithm::kGzip:
      return "gzip";
  }
  return "unknown";
}

}  // namespace ipcrpc
