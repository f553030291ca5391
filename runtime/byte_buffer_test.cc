#include "runtime/byte_buffer.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"

namespace ipcrpc {
namespace {

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + 3);
  return s;
}

TEST(ByteBufferTest, ParseKeepsEveryByteOfAnySize) {
  for (size_t n : {0, 1, 15, 16, 17, 100, 4096, 1 << 20}) {
    const std::string bytes = Bytes(n);
    ByteBuffer buffer(std::string("stale"));
    ASSERT_TRUE(buffer.ParseFromString(bytes)) << n;
    EXPECT_EQ(buffer.data(), bytes) << n;
    ASSERT_TRUE(buffer.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) << n;
    EXPECT_EQ(buffer.data(), bytes) << n;
  }
}

TEST(ByteBufferTest, SerializeWritesTheBytesUnchanged) {
  for (size_t n : {0, 1, 16, 17, 5000, 1 << 20}) {
    ByteBuffer buffer(Bytes(n));
    EXPECT_EQ(buffer.ByteSizeLong(), n);
    EXPECT_EQ(buffer.SerializeAsString(), Bytes(n)) << n;
    std::string out(n, 'x');
    ASSERT_TRUE(buffer.SerializeToArray(out.data(), static_cast<int>(out.size())));
    EXPECT_EQ(out, Bytes(n));
  }
}

TEST(ByteBufferTest, RoundTripsATypedMessage) {
  wire::CallStart typed;
  typed.set_method("/pkg.Service/Method");
  typed.set_timeout_micros(42);
  ByteBuffer buffer(typed.SerializeAsString());
  wire::CallStart back;
  ASSERT_TRUE(back.ParseFromString(buffer.data()));
  EXPECT_EQ(back.method(), "/pkg.Service/Method");
  EXPECT_EQ(back.timeout_micros(), 42u);
}

TEST(ByteBufferTest, MergeAppendsAndNewMakesAnEmptyBuffer) {
  ByteBuffer a(std::string("ab"));
  ByteBuffer b(std::string("cd"));
  a.CheckTypeAndMergeFrom(b);
  EXPECT_EQ(a.data(), "abcd");
  wire::CallStart typed;
  typed.set_method("m");
  ByteBuffer c;
  c.CheckTypeAndMergeFrom(typed);
  EXPECT_EQ(c.data(), typed.SerializeAsString());
  std::unique_ptr<ByteBuffer> fresh(a.New(nullptr));
  EXPECT_TRUE(fresh->empty());
  EXPECT_EQ(fresh->GetTypeName(), "ipcrpc.ByteBuffer");
  EXPECT_EQ(a.Release(), "abcd");
  EXPECT_TRUE(a.empty());
}

}  // namespace
}  // namespace ipcrpc
