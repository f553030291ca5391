#include "runtime/compression.h"

#include "absl/strings/str_cat.h"

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

absl::StatusOr<CompressionAlgorithm> ParseCompressionAlgorithm(absl::string_view name) {
  if (name == "identity" || name == "none") return CompressionAlgorithm::kNone;
  if (name == "gzip") return CompressionAlgorithm::kGzip;
  return absl::InvalidArgumentError(absl::StrCat("unknown compression algorithm \"", name,
                                                 "\" (ipcrpc knows \"gzip\" and \"identity\")"));
}

}  // namespace ipcrpc
