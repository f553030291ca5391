// Tests for the per-call limits: metadata accounting, control-frame limit,
// CALL_START parsing and the timeout conversion.

#include "runtime/internal/call_limits.h"

#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

constexpr MetadataLimits kLimits{8192, 256};

TEST(CallLimitsTest, MetadataIsCountedAsGrpcCountsHeaders) {
  Metadata metadata;
  metadata.emplace("key", std::string(8192 - 32 - 3, 'v'));  // exactly 8 KiB
  EXPECT_TRUE(CheckMetadataSize(metadata, kLimits, "m").ok());
  metadata.begin()->second += "v";
  absl::Status over = CheckMetadataSize(metadata, kLimits, "request metadata");
  EXPECT_TRUE(absl::IsResourceExhausted(over)) << over;
  EXPECT_NE(over.message().find("max_metadata_bytes"), std::string::npos) << over;
}

TEST(CallLimitsTest, EntryCountIsCappedToo) {
  Metadata metadata;
  for (int i = 0; i < 257; ++i) metadata.emplace("k", "");
  absl::Status over = CheckMetadataSize(metadata, {1 << 20, 256}, "m");
  EXPECT_TRUE(absl::IsResourceExhausted(over));
  EXPECT_NE(over.message().find("max_metadata_entries"), std::string::npos) << over;
}

TEST(CallLimitsTest, ControlFrameLimitLeavesRoomAndDoesNotOverflow) {
  EXPECT_EQ(ControlFrameLimit(kLimits), 8192u + kControlFrameAllowance);
  EXPECT_EQ(ControlFrameLimit({SIZE_MAX, 1}), UINT32_MAX);
}

TEST(CallLimitsTest, HugeTimeoutsAreNoDeadline) {
  const absl::Time now = absl::Now();
  EXPECT_EQ(DeadlineFromTimeoutMicros(0, now), absl::InfiniteFuture());
  EXPECT_EQ(DeadlineFromTimeoutMicros(uint64_t{1} << 63, now), absl::InfiniteFuture());
  EXPECT_EQ(DeadlineFromTimeoutMicros(UINT64_MAX, now), absl::InfiniteFuture());
  EXPECT_EQ(DeadlineFromTimeoutMicros(1500, now), now + absl::Microseconds(1500));
  EXPECT_GT(DeadlineFromTimeoutMicros(INT64_MAX, now), now + absl::Hours(24 * 365 * 1000));
}

TEST(CallLimitsTest, LongStatusMessagesAreCut) {
  EXPECT_EQ(StatusMessageForWire("short"), "short");
  std::string cut = StatusMessageForWire(std::string(100000, 'x'));
  EXPECT_EQ(cut.size(), kMaxStatusMessageBytes);
  EXPECT_NE(cut.find("truncated"), std::string::npos);
}

TEST(CallLimitsTest, ParseCallStartRefusesWhatExceedsTheLimits) {
  wire::CallStart scratch;
  ParsedCallStart call;
  Frame frame;
  frame.header.type = FrameType::kCallStart;
  frame.header.length = 1 << 22;
  frame.oversized = true;
  EXPECT_TRUE(absl::IsResourceExhausted(
      ParseCallStart(frame, kLimits, absl::Now(), &scratch, &call)));

  frame.oversized = false;
  frame.payload = "\xff\xff\xff";  // not a CallStart
  EXPECT_TRUE(absl::IsInternal(ParseCallStart(frame, kLimits, absl::Now(), &scratch, &call)));

  wire::CallStart start;
  start.set_method("/a.B/C");
  start.add_metadata();  // empty key
  frame.payload = start.SerializeAsString();
  EXPECT_TRUE(absl::IsInternal(ParseCallStart(frame, kLimits, absl::Now(), &scratch, &call)));

  start.clear_metadata();
  auto* e = start.add_metadata();
  e->set_key("k");
  e->set_value("v");
  frame.payload = start.SerializeAsString();
  ASSERT_TRUE(ParseCallStart(frame, kLimits, absl::Now(), &scratch, &call).ok());
  EXPECT_EQ(call.method, "/a.B/C");
  EXPECT_EQ(call.deadline, absl::InfiniteFuture());
  ASSERT_EQ(call.metadata.size(), 1u);
  EXPECT_EQ(call.metadata.begin()->second, "v");
}

}  // namespace
}  // namespace ipcrpc::internal
