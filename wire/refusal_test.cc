// Tests for wire/refusal.h: a refusal round-trips its code and reason, and a
// GOAWAY that is malformed or carries no error is UNAVAILABLE.

#include "wire/refusal.h"

#include <string>

#include "gtest/gtest.h"
#include "wire/frame.h"

namespace ipcrpc::internal {
namespace {

TEST(RefusalTest, CodeAndReasonTravel) {
  std::string out;
  AppendRefusalFrame(absl::PermissionDeniedError("uid 65534 may not connect"), &out);
  auto header = DecodeFrameHeader(out.data());
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->type, FrameType::kGoAway);
  EXPECT_EQ(header->stream_id, 0u);
  ASSERT_EQ(out.size(), kFrameHeaderSize + header->length);
  absl::Status s = RefusalStatus(absl::string_view(out).substr(kFrameHeaderSize), "unix:/x");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "unix:/x refused the connection: uid 65534 may not connect");
}

TEST(RefusalTest, MalformedOrOkGoAwayIsUnavailable) {
  EXPECT_EQ(RefusalStatus("\xff\xff\xff", "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RefusalStatus("", "x").code(), absl::StatusCode::kUnavailable);  // code 0
}

}  // namespace
}  // namespace ipcrpc::internal
