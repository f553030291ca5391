#include "bridge/grpc_mapping.h"

#include "gtest/gtest.h"

namespace ipcrpc::grpc_bridge {
namespace {

TEST(GrpcMappingTest, ReservedAndConnectionKeysAreDropped) {
  for (const char* key : {"grpc-timeout", "grpc-status-details-bin", "ipcrpc-x", "te",
                          "content-type", "user-agent", ":path", ""}) {
    EXPECT_TRUE(DroppedKey(key)) << key;
  }
  for (const char* key : {"x-request-id", "auth-bin", "grpcx", "ipcrpc"}) {
    EXPECT_FALSE(DroppedKey(key)) << key;
  }
}

TEST(GrpcMappingTest, ValuesGrpcCannotCarryAreRefused) {
  EXPECT_TRUE(CheckGrpcMetadataEntry("k", "printable ~").ok());
  EXPECT_TRUE(CheckGrpcMetadataEntry("k-bin", std::string("\0\xff", 2)).ok());
  EXPECT_EQ(CheckGrpcMetadataEntry("k", "tab\there").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckGrpcMetadataEntry("K", "v").code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcMappingTest, StatusDetailsTravelAsTrailingMetadata) {
  Metadata trailing = {{"grpc-status-details-bin", "DETAILS"}, {"other", "x"}};
  grpc::Status g = ToGrpcStatus(absl::NotFoundError("gone"), trailing);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(g.error_message(), "gone");
  EXPECT_EQ(g.error_details(), "DETAILS");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus(), trailing).ok());

  Metadata back;
  absl::Status a = FromGrpcStatus(g, &back);
  EXPECT_EQ(a, absl::NotFoundError("gone"));
  EXPECT_EQ(back.find("grpc-status-details-bin")->second, "DETAILS");
}

TEST(GrpcMappingTest, CodesOutsideTheCanonicalRangeAreUnknown) {
  EXPECT_EQ(ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(42), "odd"), {}).error_code(),
            grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(20), "odd"), nullptr).code(),
            absl::StatusCode::kUnknown);
}

TEST(GrpcMappingTest, DeadlinesAndBuffers) {
  EXPECT_EQ(FromGrpcDeadline(std::chrono::system_clock::time_point::max()),
            absl::InfiniteFuture());
  std::string bytes("a\0b", 3), out;
  ASSERT_TRUE(FromGrpcBuffer(ToGrpcBuffer(bytes), &out));
  EXPECT_EQ(out, bytes);
}

}  // namespace
}  // namespace ipcrpc::grpc_bridge
