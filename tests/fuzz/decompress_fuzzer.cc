// libFuzzer target: decompressing a peer's MESSAGE payload (wire/compression.h).
//
// The input's first byte picks the algorithm id (as a MESSAGE frame's flags
// would) and the receive limit; the rest is the payload. Decompression must
// succeed or fail with a status — never crash, never produce (or hold) more
// than the limit — and what it produces must compress and decompress back
// to itself.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "wire/compression.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipcrpc::internal;
  if (size == 0) return 0;
  const uint8_t algorithm = data[0] & kFlagCompressionMask;
  const size_t limit = size_t{1} << (10 + ((data[0] >> 4) % 9));  // 1 KiB .. 256 KiB
  const absl::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string out;
  absl::Status status = Decompress(algorithm, payload, limit, &out);
  if (out.size() > limit) std::abort();
  if (!status.ok()) {
    if (!out.empty()) std::abort();  // a failure keeps nothing
    const absl::StatusCode code = status.code();
    if (code != absl::StatusCode::kInternal && code != absl::StatusCode::kResourceExhausted &&
        code != absl::StatusCode::kUnimplemented) {
      std::abort();
    }
    return 0;
  }
  if (algorithm != kCompressionGzip) std::abort();  // only gzip decompresses
  std::string again;
  if (Compress(algorithm, out, &again)) {
    std::string back;
    if (!Decompress(algorithm, again, limit, &back).ok() || back != out) std::abort();
  }
  return 0;
}
