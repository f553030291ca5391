// File descriptors cannot cross a gRPC connection: every way a message can
// meet gRPC refuses one with FAILED_PRECONDITION and a clear message, and a
// handle number a gRPC peer writes into a FileDescriptor field names nothing
// on this side (runtime/file_descriptor.h, docs/GRPC_BRIDGE.md). Routes, each
// against tests/e2e's FdService in a real test server process:
//   * in-process bridge: an ipcrpc stub with a grpc: address → the
//     bridge_test_server's ServeOverGrpc port;
//   * gateway, gRPC → local: grpc: → ipcrpc_gateway --grpc_listen → test_server;
//   * gateway, local → gRPC: unix: → ipcrpc_gateway --listen → the
//     bridge_test_server's gRPC port.

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"
#include "tests/bridge/child_process.h"
#include "tests/e2e/fd_service.ipcrpc.pb.h"
#include "tests/e2e/fd_util.h"
#include "tests/testing/notification.h"
#include "tests/testing/temp_dir.h"

namespace ipcrpc::test {
namespace {

enum class Route { kInProcessBridge, kGatewayIntoLocal, kGatewayOutToGrpc };

std::string RouteName(const ::testing::TestParamInfo<Route>& info) {
  switch (info.param) {
    case Route::kInProcessBridge: return "InProcessBridge";
    case Route::kGatewayIntoLocal: return "GatewayIntoLocal";
    case Route::kGatewayOutToGrpc: return "GatewayOutToGrpc";
  }
  return "Unknown";
}

class FdBridgeTest : public ::testing::TestWithParam<Route> {
 protected:
  void SetUp() override {
    const std::string local = "unix:" + dir_.File("server.sock");
    if (GetParam() == Route::kGatewayIntoLocal) {
      server_ = std::make_unique<ChildProcess>(std::vector<std::string>{
          RunfilePath("tests/e2e/test_server"), local, "--generic_echo"});
      ASSERT_TRUE(server_->Start()) << server_->output();
      gateway_ = std::make_unique<ChildProcess>(std::vector<std::string>{
          RunfilePath("bridge/ipcrpc_gateway"), "--grpc_listen=127.0.0.1:0", "--to=" + local});
      ASSERT_TRUE(gateway_->Start()) << gateway_->output();
      address_ = "grpc:127.0.0.1:" + gateway_->Value("grpc_port");
    } else {
      server_ = std::make_unique<ChildProcess>(
          std::vector<std::string>{RunfilePath("tests/bridge/bridge_test_server"), local,
                                   "--grpc_listen=127.0.0.1:0", "--generic_echo"});
      ASSERT_TRUE(server_->Start()) << server_->output();
      const std::string grpc = "grpc:127.0.0.1:" + server_->Value("GRPC_PORT");
      if (GetParam() == Route::kInProcessBridge) {
        address_ = grpc;
      } else {
        address_ = "unix:" + dir_.File("gw.sock");
        gateway_ = std::make_unique<ChildProcess>(std::vector<std::string>{
            RunfilePath("bridge/ipcrpc_gateway"), "--listen=" + address_, "--to=" + grpc});
        ASSERT_TRUE(gateway_->Start()) << gateway_->output();
      }
    }
    auto channel = CreateChannel(address_);
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
    stub_ = FdService::NewStub(channel_);
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<ChildProcess> gateway_;
  std::string address_;
  std::shared_ptr<Channel> channel_;
  std::shared_ptr<FdService::Stub> stub_;
};

// A request that names a descriptor is refused before it is sent (the
// grpc: channel checks; the gateway's ipcrpc side announced none), and
// nothing is left open. (Before: the descriptor's number went to the gRPC
// peer as if it were data.)
TEST_P(FdBridgeTest, ARequestNamingADescriptorIsFailedPrecondition) {
  {  // the connections (and gRPC's own descriptors) exist before counting
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(10));
    FdReply reply;
    ASSERT_TRUE(stub_->Hold(&ctx, FdRequest(), &reply).ok());
  }
  const int before = CountOpenFds();
  {
    absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "local only");
    ASSERT_TRUE(fd.ok()) << fd.status();
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(10));
    FdRequest req;
    SetFd(req.mutable_fd(), fd->get());
    FdReply reply;
    absl::Status s = stub_->Read(&ctx, req, &reply);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find("descriptor"), std::string::npos) << s;
    // A client stream too.
    ClientContext stream_ctx;
    stream_ctx.set_timeout(absl::Seconds(10));
    FdReply stream_reply;
    auto writer = stub_->ReadStream(&stream_ctx, &stream_reply);
    writer->Write(req);
    writer->WritesDone();
    s = writer->Finish();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    // The callback form too.
    ClientContext async_ctx;
    async_ctx.set_timeout(absl::Seconds(10));
    FdReply async_reply;
    absl::Status async_status;
    testing::Notification done;
    stub_->async()->Read(&async_ctx, &req, &async_reply, [&](absl::Status st) {
      async_status = st;
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_EQ(async_status.code(), absl::StatusCode::kFailedPrecondition) << async_status;
  }
  EXPECT_EQ(CountOpenFds(), before);
}

// A handler that answers with a descriptor fails the call with
// FAILED_PRECONDITION instead of sending its number to the gRPC client.
TEST_P(FdBridgeTest, AResponseNamingADescriptorIsFailedPrecondition) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  FdRequest req;
  req.set_kind("memfd");
  req.set_content("server side");
  FdReply reply;
  absl::Status s = stub_->Open(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("file descriptors"), std::string::npos) << s;
  EXPECT_EQ(reply.fd().handle(), 0u);
}

// A handle number a gRPC peer writes, with no descriptor behind it, names
// none on the side that parses it: the ipcrpc server (Peek reports what its
// handler's PeekFd sees) and this client (a generic echo returns the bytes).
TEST_P(FdBridgeTest, AHandleNumberFromAGrpcPeerNamesNoDescriptor) {
  GenericStub generic(channel_);
  auto echo = FdEcho::NewStub(channel_);
  for (uint32_t handle : {1u, 4u, 1000u}) {
    ForgedRequest forged;
    forged.mutable_fd()->set_handle(handle);
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(10));
    ByteBuffer response;
    absl::Status s = generic.UnaryCall(&ctx, "/ipcrpc.test.FdService/Peek",
                                       ByteBuffer(forged.SerializeAsString()), &response);
    ASSERT_TRUE(s.ok()) << s;
    FdReply peeked;
    ASSERT_TRUE(peeked.ParseFromString(response.data()));
    EXPECT_EQ(peeked.content(), "-1") << "handle " << handle;

    ClientContext echo_ctx;
    echo_ctx.set_timeout(absl::Seconds(10));
    ForgedReply forged_reply;
    forged_reply.mutable_fd()->set_handle(handle);
    FdReply echoed;
    s = echo->Echo(&echo_ctx, forged_reply, &echoed);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(PeekFd(echoed.fd()), -1) << "handle " << handle;
  }
}

INSTANTIATE_TEST_SUITE_P(Routes, FdBridgeTest,
                         ::testing::Values(Route::kInProcessBridge, Route::kGatewayIntoLocal,
                                           Route::kGatewayOutToGrpc),
                         RouteName);

}  // namespace
}  // namespace ipcrpc::test
