// Without the bridge library linked, "grpc:"/"grpcs:" addresses fail with
// UNIMPLEMENTED naming the dependency to add — the core links no gRPC.

#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"

namespace ipcrpc {
namespace {

TEST(NoBridgeTest, GrpcAddressNamesTheMissingLibrary) {
  for (const char* address : {"grpc:localhost:50051", "grpcs:example.com:443"}) {
    auto channel = CreateChannel(address);
    EXPECT_EQ(channel.status().code(), absl::StatusCode::kUnimplemented) << address;
    EXPECT_NE(channel.status().message().find("//bridge:grpc_channel"), absl::string_view::npos)
        << channel.status();
  }
}

TEST(NoBridgeTest, OtherUnknownSchemesStayInvalid) {
  auto channel = CreateChannel("nope:/x");
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument) << channel.status();
}

}  // namespace
}  // namespace ipcrpc
