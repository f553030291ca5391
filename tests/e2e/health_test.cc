// grpc.health.v1.Health in real processes: test_server --health
// (ServerBuilder::EnableHealthService) answered by a stub generated from
// proto/grpc/health/v1/health.proto and, to pin the wire format, by a
// GenericStub with hand-encoded bytes.

#include <sys/wait.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.ipcrpc.pb.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kTestService[] = "ipcrpc.test.TestService";

HealthCheckRequest For(const std::string& service) {
  HealthCheckRequest request;
  request.set_service(service);
  return request;
}

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
    health_ = Health::NewStub(channel_);
    test_ = TestService::NewStub(channel_);
  }

  void SetHealth(const std::string& service, bool serving) {
    ClientContext ctx;
    Request request;
    request.set_text(service);
    request.set_count(serving ? 1 : 0);
    Response response;
    ASSERT_TRUE(test_->SetHealth(&ctx, request, &response).ok());
  }

  absl::StatusOr<HealthCheckResponse::ServingStatus> Check(const std::string& service) {
    ClientContext ctx;
    HealthCheckResponse response;
    absl::Status status = health_->Check(&ctx, For(service), &response);
    if (!status.ok()) return status;
    return response.status();
  }

  ServerProcess server_{{"--health"}};
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<Health::Stub> health_;
  std::unique_ptr<TestService::Stub> test_;
};

TEST_F(HealthTest, CheckTheServerARegisteredServiceAndAnUnknownOne) {
  EXPECT_EQ(Check("").value(), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(kTestService).value(), HealthCheckResponse::SERVING);
  absl::StatusOr<HealthCheckResponse::ServingStatus> unknown = Check("no.Such");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();

  SetHealth(kTestService, false);
  EXPECT_EQ(Check(kTestService).value(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check("").value(), HealthCheckResponse::SERVING);
}

TEST_F(HealthTest, WireFormatIsGrpcs) {
  GenericStub stub(channel_);
  ClientContext ctx;
  ByteBuffer response;
  // HealthCheckRequest{service: ""} is empty; {status: SERVING} is field 1 = 1.
  ASSERT_TRUE(stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", ByteBuffer(), &response).ok());
  EXPECT_EQ(response.data(), std::string("\x08\x01", 2));
}

TEST_F(HealthTest, WatchSeesEveryChangeAndEndsWhenCancelled) {
  ClientContext ctx;
  auto watch = health_->Watch(&ctx, For(kTestService));
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  SetHealth(kTestService, false);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  SetHealth(kTestService, true);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  ctx.TryCancel();
  EXPECT_FALSE(watch->Read(&update));
  EXPECT_EQ(watch->Finish().code(), absl::StatusCode::kCancelled);
}

TEST_F(HealthTest, WatchAnUnknownServiceUntilItAppears) {
  ClientContext ctx;
  auto watch = health_->Watch(&ctx, For("later.Service"));
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  SetHealth("later.Service", true);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  ctx.TryCancel();
  watch->Finish().IgnoreError();
}

TEST_F(HealthTest, WatchEndsWhenTheServerShutsDown) {
  ClientContext ctx;
  auto watch = health_->Watch(&ctx, For(""));
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  // SIGTERM: the server shuts down with a 2 s drain, which the open Watch
  // must not hold up; Terminate waits for the process to exit.
  int exit_status = server_.Terminate();
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&update));
  EXPECT_EQ(watch->Finish().code(), absl::StatusCode::kUnavailable);
}

TEST(HealthDisabledTest, HealthIsOffUnlessEnabled) {
  ServerProcess server;
  auto channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  ClientContext ctx;
  HealthCheckResponse response;
  absl::Status status = Health::NewStub(*channel)->Check(&ctx, For(""), &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
}

}  // namespace
}  // namespace ipcrpc::test
