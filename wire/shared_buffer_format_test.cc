#include "wire/shared_buffer_format.h"

#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

TEST(SharedBufferFormat, TableRoundTripsAndBytesAreAsDocumented) {
  std::string payload = "msg";
  EncodeBufferTable({{7, 2, 0x100, 0x10}}, &payload);
  // PROTOCOL.md §13's example entry.
  const std::string expected =
      std::string("msg") + std::string("\x07\0\0\0\x02\0\0\0\0\x01\0\0\0\0\0\0\x10\0\0\0\0\0\0\0", 24) +
      std::string("\x01\0\0\0", 4);
  EXPECT_EQ(payload, expected);
  absl::string_view message;
  std::vector<BufferReference> refs;
  ASSERT_TRUE(DecodeBufferTable(payload, &message, &refs));
  EXPECT_EQ(message, "msg");
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].key, 7u);
  EXPECT_EQ(refs[0].segment, 2u);
  EXPECT_EQ(refs[0].offset, 0x100u);
  EXPECT_EQ(refs[0].length, 0x10u);
}

TEST(SharedBufferFormat, RefusesCountsThatDoNotFit) {
  absl::string_view message;
  std::vector<BufferReference> refs;
  EXPECT_FALSE(DecodeBufferTable("ab", &message, &refs));                    // no count
  EXPECT_FALSE(DecodeBufferTable(std::string("\x02\0\0\0", 4), &message, &refs));  // 2 entries, 0 bytes
  EXPECT_FALSE(DecodeBufferTable(std::string("\xff\xff\xff\xff", 4), &message, &refs));
  EXPECT_TRUE(DecodeBufferTable(std::string("\0\0\0\0", 4), &message, &refs));
  EXPECT_TRUE(refs.empty());
}

TEST(SharedBufferFormat, SegmentAndLists) {
  std::string out;
  EncodeSegmentAnnouncement({3, 1ull << 33}, &out);
  SegmentAnnouncement s;
  ASSERT_TRUE(DecodeSegmentAnnouncement(out, &s));
  EXPECT_EQ(s.segment, 3u);
  EXPECT_EQ(s.size, 1ull << 33);
  EXPECT_FALSE(DecodeSegmentAnnouncement(out.substr(1), &s));
  std::vector<uint32_t> values;
  EXPECT_FALSE(DecodeU32List("abc", &values));
  out.clear();
  EncodeU32List({1, 0x80000001}, &out);
  ASSERT_TRUE(DecodeU32List(out, &values));
  EXPECT_EQ(values, (std::vector<uint32_t>{1, 0x80000001}));
}

}  // namespace
}  // namespace ipcrpc::internal
