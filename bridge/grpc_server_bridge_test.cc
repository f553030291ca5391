// ServeOverGrpc's error paths and lifetime, in one process (calls from real
// third-party clients in other processes are in tests/bridge/).

#include "bridge/grpc_server_bridge.h"

#include <unistd.h>

#include <string>

#include "bridge/grpc_channel.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"

namespace ipcrpc::grpc_bridge {
namespace {

class Echo final : public GenericService {
  absl::Status HandleCall(ServerContext*, GenericServerReaderWriter* stream) override {
    ByteBuffer m;
    while (stream->Read(&m)) {
      if (!stream->Write(m)) break;
    }
    return absl::OkStatus();
  }
};

class GrpcServerBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerBuilder builder;
    builder.RegisterGenericService(&echo_).AddListeningAddress(
        "unix:@ipcrpc-bridge-test-" + std::to_string(getpid()));
    auto server = builder.BuildAndStart();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  absl::Status CallThroughGrpc(int port) {
    auto channel = CreateChannel("grpc:127.0.0.1:" + std::to_string(port));
    if (!channel.ok()) return channel.status();
    GenericStub stub(*channel);
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(10));
    ByteBuffer request("ping"), response;
    absl::Status s = stub.UnaryCall(&ctx, "/any.Service/Method", request, &response);
    if (s.ok() && response.data() != "ping") return absl::InternalError("wrong echo");
    return s;
  }

  Echo echo_;
  std::unique_ptr<Server> server_;
};

TEST_F(GrpcServerBridgeTest, ServesAndStops) {
  auto bridge = ServeOverGrpc(*server_, "127.0.0.1:0", grpc::InsecureServerCredentials());
  ASSERT_TRUE(bridge.ok()) << bridge.status();
  int port = (*bridge)->port();
  ASSERT_GT(port, 0);
  EXPECT_TRUE(CallThroughGrpc(port).ok());
  (*bridge)->Shutdown();
  (*bridge)->Shutdown();  // again: returns at once
  EXPECT_EQ(CallThroughGrpc(port).code(), absl::StatusCode::kUnavailable);
}

TEST_F(GrpcServerBridgeTest, NullCredentialsAreInvalid) {
  auto bridge = ServeOverGrpc(*server_, "127.0.0.1:0", nullptr);
  EXPECT_EQ(bridge.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GrpcServerBridgeTest, PortInUseOrBadAddressIsUnavailable) {
  auto first = ServeOverGrpc(*server_, "127.0.0.1:0", grpc::InsecureServerCredentials());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = ServeOverGrpc(*server_, "127.0.0.1:" + std::to_string((*first)->port()),
                              grpc::InsecureServerCredentials());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  auto bad = ServeOverGrpc(*server_, "no such host name:x", grpc::InsecureServerCredentials());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnavailable) << bad.status();
}

TEST_F(GrpcServerBridgeTest, ServerAlreadyShutDownIsRefused) {
  server_->Shutdown();
  auto bridge = ServeOverGrpc(*server_, "127.0.0.1:0", grpc::InsecureServerCredentials());
  EXPECT_EQ(bridge.status().code(), absl::StatusCode::kFailedPrecondition) << bridge.status();
}

}  // namespace
}  // namespace ipcrpc::grpc_bridge
