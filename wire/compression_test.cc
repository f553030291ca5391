#include "wire/compression.h"

#include <string>

#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

std::string Compressible(size_t n) {
  std::string s;
  while (s.size() < n) s += "ipcrpc compresses repetitive text well; ";
  s.resize(n);
  return s;
}

TEST(CompressionTest, GzipRoundTrip) {
  const std::string plain = Compressible(100000);
  std::string packed;
  ASSERT_TRUE(Compress(kCompressionGzip, plain, &packed));
  EXPECT_LT(packed.size(), plain.size() / 10);
  EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0x1f);  // the gzip magic
  EXPECT_EQ(static_cast<unsigned char>(packed[1]), 0x8b);
  std::string out;
  ASSERT_TRUE(Decompress(kCompressionGzip, packed, plain.size(), &out).ok());
  EXPECT_EQ(out, plain);
}

TEST(CompressionTest, IncompressibleOrTinyIsNotCompressed) {
  std::string packed;
  EXPECT_FALSE(Compress(kCompressionGzip, "ab", &packed));
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 4096; ++i) {
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>(x >> 24));
  }
  EXPECT_FALSE(Compress(kCompressionGzip, noise, &packed));
  EXPECT_FALSE(Compress(kCompressionNone, Compressible(1000), &packed));
}

TEST(CompressionTest, EmptyMessageRoundTrips) {
  // An empty payload is never sent compressed, but a peer may send one.
  std::string packed;
  EXPECT_FALSE(Compress(kCompressionGzip, "", &packed));
}

TEST(CompressionTest, ZipBombStopsAtTheLimit) {
  // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
  const std::string zeros(64 << 20, '\0');
  std::string packed;
  ASSERT_TRUE(Compress(kCompressionGzip, zeros, &packed));
  std::string out;
  absl::Status s = Decompress(kCompressionGzip, packed, 1 << 20, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), size_t{1} << 20);  // gave its memory back
}

TEST(CompressionTest, ExactlyAtTheLimitIsAccepted) {
  const std::string plain = Compressible(70000);
  std::string packed;
  ASSERT_TRUE(Compress(kCompressionGzip, plain, &packed));
  std::string out;
  EXPECT_TRUE(Decompress(kCompressionGzip, packed, plain.size(), &out).ok());
  EXPECT_EQ(Decompress(kCompressionGzip, packed, plain.size() - 1, &out).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(CompressionTest, CorruptTruncatedAndTrailingBytesAreInternal) {
  const std::string plain = Compressible(10000);
  std::string packed;
  ASSERT_TRUE(Compress(kCompressionGzip, plain, &packed));
  std::string out;
  std::string corrupt = packed;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() - 3] ^= 0x55;  // the CRC, in case the middle still inflates
  EXPECT_EQ(Decompress(kCompressionGzip, corrupt, 1 << 20, &out).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Decompress(kCompressionGzip, packed.substr(0, packed.size() / 2), 1 << 20, &out)
                .code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Decompress(kCompressionGzip, packed + "x", 1 << 20, &out).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Decompress(kCompressionGzip, "not gzip at all", 1 << 20, &out).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Decompress(kCompressionGzip, "", 1 << 20, &out).code(), absl::StatusCode::kInternal);
}

TEST(CompressionTest, UnknownAlgorithmIsUnimplemented) {
  std::string out;
  EXPECT_EQ(Decompress(7, "abc", 100, &out).code(), absl::StatusCode::kUnimplemented);
}

TEST(CompressionTest, PeerAccepts) {
  EXPECT_TRUE(PeerAccepts(kSupportedCompression, kCompressionGzip));
  EXPECT_FALSE(PeerAccepts(0, kCompressionGzip));  // an older peer
  EXPECT_FALSE(PeerAccepts(kSupportedCompression, kCompressionNone));
  EXPECT_EQ(CompressionOf(0x0011), kCompressionGzip);
}

}  // namespace
}  // namespace ipcrpc::internal
