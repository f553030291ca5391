#include "wire/compression.h"

#include <zlib.h>

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"

namespace ipcrpc::internal {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // zlib: a gzip header and trailer
constexpr size_t kInflateStep = 64 * 1024;

bool GzipCompress(absl::string_view in, std::string* out) {
  if (in.size() > UINT_MAX) return false;
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  // Only a smaller result is of use: give deflate no more room than that.
  out->resize(in.size());
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  const int rc = deflate(&z, Z_FINISH);
  const size_t produced = out->size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END || produced >= in.size()) return false;
  out->resize(produced);
  return true;
}

absl::Status GzipDecompress(absl::string_view in, size_t max_bytes, std::string* out) {
  out->clear();
  if (in.size() > UINT_MAX) return absl::InternalError("compressed message too large");
  z_stream z{};
  if (inflateInit2(&z, kGzipWindowBits) != Z_OK) {
    return absl::ResourceExhaustedError("cannot start gzip decompression");
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  absl::Status status;
  size_t filled = 0;
  for (;;) {
    // Grow geometrically with what was produced, never past the limit + 1
    // (one byte more than allowed proves the limit is exceeded).
    if (filled == out->size()) {
      const size_t cap = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes + 1;
      if (out->size() >= cap) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "decompressed message exceeds the limit of ", max_bytes, " bytes"));
        break;
      }
      const size_t grow = std::max(kInflateStep, out->size());
      out->resize(std::min(cap, out->size() + grow));
    }
    z.next_out = reinterpret_cast<Bytef*>(out->data() + filled);
    z.avail_out = static_cast<uInt>(std::min<size_t>(out->size() - filled, UINT_MAX));
    const uInt before = z.avail_out;
    const int rc = inflate(&z, Z_NO_FLUSH);
    filled += before - z.avail_out;
    if (rc == Z_STREAM_END) {
      if (filled > max_bytes) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "decompressed message exceeds the limit of ", max_bytes, " bytes"));
      } else if (z.avail_in != 0) {
        status = absl::InternalError("bytes after the end of a gzip-compressed message");
      }
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_out != 0) {  // no progress possible: input ended
      status = absl::InternalError("gzip-compressed message is truncated");
      break;
    }
    if (rc == Z_BUF_ERROR) continue;  // needs more output room
    status = absl::InternalError(absl::StrCat(
        "corrupt gzip-compressed message (zlib: ", z.msg != nullptr ? z.msg : "error", ")"));
    break;
  }
  inflateEnd(&z);
  if (!status.ok()) {
    out->clear();
    out->shrink_to_fit();
    return status;
  }
  out->resize(filled);
  return absl::OkStatus();
}

}  // namespace

bool Compress(uint8_t algorithm, absl::string_view in, std::string* out) {
  switch (algorithm) {
    case kCompressionGzip:
      return GzipCompress(in, out);
    default:
      return false;
  }
}

absl::Status Decompress(uint8_t algorithm, absl::string_view in, size_t max_bytes,
                        std::string* out) {
  switch (algorithm) {
    case kCompressionGzip:
      return GzipDecompress(in, max_bytes, out);
    default:
      return absl::UnimplementedError(
          absl::StrCat("message compressed with unknown algorithm id ", algorithm));
  }
}

}  // namespace ipcrpc::internal
