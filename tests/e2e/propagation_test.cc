// ClientContext::FromServerContext end to end, across three processes: this
// test calls an upstream test_server, whose Relay handler calls a downstream
// test_server with a context made from its ServerContext. Checks that the
// deadline travels on, that cancelling, timing out or shutting down the
// upstream call ends the downstream one, and that a child context may
// outlive its server call (and the other way round) — run it under ASan.

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/ipc_leak_check.h"

namespace ipcrpc::test {
namespace {

// Nothing may remain afterwards: sockets, temp directories.
const auto* const kLeakCheck =
    ::testing::AddGlobalTestEnvironment(new testing::IpcLeakCheck);

// The test calls `upstream_`, whose Relay handler calls `downstream_` with a
// context made from its ServerContext.
class PropagationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto channel = CreateChannel(upstream_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    upstream_stub_ = TestService::NewStub(*channel);
    channel = CreateChannel(downstream_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    downstream_stub_ = TestService::NewStub(*channel);
  }

  Request RelayTo(const std::string& method) {
    Request req;
    req.set_downstream(downstream_.address());
    req.set_downstream_method(method);
    return req;
  }

  // Polls a "Last*" method until its text is none of `transient` (or 20 s).
  template <typename Method>
  std::string AwaitOutcome(TestService::Stub& stub, Method method,
                           std::vector<std::string> transient) {
    std::string text;
    for (int i = 0; i < 4000; ++i) {
      ClientContext ctx;
      Response resp;
      if (!(stub.*method)(&ctx, google::protobuf::Empty(), &resp).ok()) return "call failed";
      text = resp.text();
      if (std::find(transient.begin(), transient.end(), text) == transient.end()) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return text;
  }
  std::string DownstreamLastCancel() {
    return AwaitOutcome(*downstream_stub_, &TestService::Stub::LastCancel, {"none", "waiting"});
  }
  std::string UpstreamLastRelay() {
    return AwaitOutcome(*upstream_stub_, &TestService::Stub::LastRelay, {"none", "running"});
  }
  // Waits until the downstream handler is blocked in WaitForCancel.
  void AwaitDownstreamWaiting() {
    EXPECT_EQ(AwaitOutcome(*downstream_stub_, &TestService::Stub::LastCancel, {"none"}),
              "waiting");
  }

  ServerProcess downstream_;
  ServerProcess upstream_{{"--grace_ms=100"}};
  std::unique_ptr<TestService::Stub> upstream_stub_;
  std::unique_ptr<TestService::Stub> downstream_stub_;
};

TEST_F(PropagationTest, DownstreamSeesTheUpstreamDeadline) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(30));
  Response resp;
  ASSERT_TRUE(upstream_stub_->Relay(&ctx, RelayTo("ReportDeadline"), &resp).ok());
  ASSERT_NE(resp.deadline_unix_micros(), 0) << "the downstream call had no deadline";
  absl::Time downstream_deadline = absl::FromUnixMicros(resp.deadline_unix_micros());
  // The same deadline, give or take the time the messages took (generously).
  EXPECT_LT(absl::AbsDuration(downstream_deadline - ctx.deadline()), absl::Seconds(5))
      << "client " << ctx.deadline() << ", downstream " << downstream_deadline;
}

TEST_F(PropagationTest, UpstreamDeadlineEndsTheDownstreamCall) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(300));
  Response resp;
  absl::Status s = upstream_stub_->Relay(&ctx, RelayTo("WaitForCancel"), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  // The downstream call ends at the deadline (its handler would otherwise
  // wait 10 s). Two events race there: the child's own copy of the deadline
  // (DEADLINE_EXCEEDED) and this client's CANCEL, sent when its copy passes,
  // which cancels the upstream call and with it the child (CANCELLED).
  std::string downstream = DownstreamLastCancel();
  EXPECT_TRUE(downstream == "deadline" || downstream == "cancelled") << downstream;
  std::string child = UpstreamLastRelay();
  EXPECT_TRUE(child == "DEADLINE_EXCEEDED" || child == "CANCELLED") << child;
}

TEST_F(PropagationTest, UpstreamClientCancelCancelsTheDownstreamCall) {
  ClientContext ctx;
  Response resp;
  absl::Status s;
  std::thread call([&] { s = upstream_stub_->Relay(&ctx, RelayTo("WaitForCancel"), &resp); });
  AwaitDownstreamWaiting();
  ctx.TryCancel();
  call.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(DownstreamLastCancel(), "cancelled");  // its handler saw IsCancelled()
  EXPECT_EQ(UpstreamLastRelay(), "CANCELLED");     // the child call ended CANCELLED
}

TEST_F(PropagationTest, UpstreamShutdownPastItsDrainCancelsTheDownstreamCall) {
  ClientContext ctx;
  Response resp;
  absl::Status s;
  std::thread call([&] { s = upstream_stub_->Relay(&ctx, RelayTo("WaitForCancel"), &resp); });
  AwaitDownstreamWaiting();
  // SIGTERM: the upstream server drains for 100 ms, then cancels its calls.
  EXPECT_EQ(upstream_.Terminate(), 0);
  call.join();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(DownstreamLastCancel(), "cancelled");
}

TEST_F(PropagationTest, ChildContextOutlivesItsServerCall) {
  ClientContext ctx;
  Request req = RelayTo("Echo");
  req.set_detach(true);
  req.set_delay_ms(300);  // the child call runs on after Relay has returned
  Response resp;
  ASSERT_TRUE(upstream_stub_->Relay(&ctx, req, &resp).ok());
  EXPECT_EQ(UpstreamLastRelay(), "OK");  // and its context was destroyed last (ASan)
  // The upstream server is still healthy.
  ClientContext c2;
  EXPECT_TRUE(upstream_stub_->Echo(&c2, Request(), &resp).ok());
}

TEST_F(PropagationTest, ServerCallCancelledAfterItsChildContextWasDestroyed) {
  ClientContext ctx;
  Request req = RelayTo("Echo");
  req.set_then_wait_for_cancel(true);
  Response resp;
  absl::Status s;
  std::thread call([&] { s = upstream_stub_->Relay(&ctx, req, &resp); });
  EXPECT_EQ(UpstreamLastRelay(), "OK");  // the child is done and destroyed
  ctx.TryCancel();                       // now the parent is cancelled
  call.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  ClientContext c2;
  EXPECT_TRUE(upstream_stub_->Echo(&c2, Request(), &resp).ok());
}

}  // namespace
}  // namespace ipcrpc::test
