// The server's callback API (runtime/server_callback.h) from a real client
// process's point of view: test_server --callback serves TestService with
// reactors (tests/e2e/callback_test_service.h) in its own process.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

class CallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
    stub_ = TestService::NewStub(channel_);
  }

  // What the server's WaitForCancel reactor saw last, once it is `want`
  // (the server may need a moment to hear of a cancellation).
  std::string LastCancel(const std::string& want) {
    std::string seen;
    for (int i = 0; i < 400; ++i) {
      ClientContext ctx;
      Response resp;
      if (!stub_->LastCancel(&ctx, google::protobuf::Empty(), &resp).ok()) return "error";
      seen = resp.text();
      if (seen == want) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return seen;
  }

  ServerProcess server_{{"--callback"}};
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<TestService::Stub> stub_;
};

TEST_F(CallbackTest, UnaryAnswersWithMetadataAndStatus) {
  ClientContext ctx;
  ctx.AddMetadata("echo-color", "blue");
  Request req;
  req.set_text("hello");
  Response resp;
  ASSERT_TRUE(stub_->Echo(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.text(), "hello");
  EXPECT_EQ(resp.peer_pid(), getpid());
  EXPECT_EQ(ctx.GetServerInitialMetadata().find("initial-color")->second, "blue");
  EXPECT_EQ(ctx.GetServerTrailingMetadata().find("trailing-color")->second, "blue");

  ClientContext failing;
  req.set_status_code(static_cast<int>(absl::StatusCode::kFailedPrecondition));
  req.set_status_message("not now");
  absl::Status s = stub_->Echo(&failing, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(s.message(), "not now");
}

TEST_F(CallbackTest, UnaryFinishedLaterFromAnotherThread) {
  // 32 calls at once, each finished 100 ms later by a thread of the
  // application's (the reactor's OnDone then runs on the server's pool).
  std::vector<std::thread> callers;
  std::vector<absl::Status> results(32);
  for (int i = 0; i < 32; ++i) {
    callers.emplace_back([&, i] {
      ClientContext ctx;
      Request req;
      req.set_text(absl::StrCat("late ", i));
      req.set_delay_ms(100);
      Response resp;
      results[i] = stub_->Echo(&ctx, req, &resp);
      if (results[i].ok() && resp.text() != req.text()) results[i] = absl::InternalError(resp.text());
    });
  }
  for (auto& t : callers) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
}

TEST_F(CallbackTest, ServerStreamWritesPastTheFlowControlWindow) {
  // 64 responses of 64 KiB: several windows' worth, so writes wait for the
  // client's credit (with no thread) and resume when it comes.
  ClientContext ctx;
  Request req;
  req.set_count(64);
  req.set_payload(std::string(64 * 1024, 'x'));
  auto reader = stub_->ServerStream(&ctx, req);
  Response resp;
  int n = 0;
  while (reader->Read(&resp)) {
    EXPECT_EQ(resp.index(), n);
    EXPECT_EQ(resp.payload().size(), 64u * 1024);
    ++n;
    if (n % 16 == 0) absl::SleepFor(absl::Milliseconds(20));  // a slow reader
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 64);
}

TEST_F(CallbackTest, ClientStreamReadsEveryRequest) {
  ClientContext ctx;
  Response resp;
  auto writer = stub_->ClientStream(&ctx, &resp);
  for (int i = 0; i < 100; ++i) {
    Request req;
    req.set_text(std::to_string(i % 10));
    ASSERT_TRUE(writer->Write(req));
  }
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.index(), 100);
  EXPECT_EQ(resp.text().size(), 100u);
}

TEST_F(CallbackTest, BidiEchoesAndEndsWithTheRequestedStatus) {
  ClientContext ctx;
  auto stream = stub_->Bidi(&ctx);
  for (int i = 0; i < 20; ++i) {
    Request req;
    req.set_text(absl::StrCat("m", i));
    ASSERT_TRUE(stream->Write(req));
    Response resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.text(), req.text());
    EXPECT_EQ(resp.index(), i);
  }
  Request last;
  last.set_status_code(static_cast<int>(absl::StatusCode::kAborted));
  last.set_status_message("enough");
  ASSERT_TRUE(stream->Write(last));
  Response resp;
  EXPECT_FALSE(stream->Read(&resp));
  absl::Status s = stream->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
}

TEST_F(CallbackTest, TheDeadlineReachesAReactorThatHoldsNoThread) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(150));
  Response resp;
  absl::Status s = stub_->WaitForCancel(&ctx, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(LastCancel("deadline"), "deadline");
}

TEST_F(CallbackTest, TheServerEndsAReactorAtItsDeadlineWhenTheClientCannot) {
  // A client stopped (SIGSTOP) during its call sends no CANCEL when its
  // deadline passes: only the server's own deadline timer can tell the
  // reactor, which no thread waits in.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    if (!channel.ok()) _exit(1);
    ClientContext ctx;
    ctx.set_timeout(absl::Milliseconds(500));
    Response resp;
    TestService::NewStub(*channel)->WaitForCancel(&ctx, Request(), &resp).IgnoreError();
    _exit(0);
  }
  EXPECT_EQ(LastCancel("waiting"), "waiting");
  kill(child, SIGSTOP);
  EXPECT_EQ(LastCancel("deadline"), "deadline");
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
}

TEST_F(CallbackTest, ACancellationReachesTheReactor) {
  ClientContext ctx;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(100));
    ctx.TryCancel();
  });
  Response resp;
  absl::Status s = stub_->WaitForCancel(&ctx, Request(), &resp);
  canceller.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(LastCancel("cancelled"), "cancelled");
}

TEST_F(CallbackTest, AClientThatDiesCancelsItsReactors) {
  // A client process killed in the middle of its call: its connection ends,
  // and the reactor, which no thread waits in, is told.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    if (!channel.ok()) _exit(1);
    ClientContext ctx;
    Response resp;
    TestService::NewStub(*channel)->WaitForCancel(&ctx, Request(), &resp).IgnoreError();
    _exit(0);
  }
  EXPECT_EQ(LastCancel("waiting"), "waiting");
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_EQ(LastCancel("cancelled"), "cancelled");
}

TEST_F(CallbackTest, ThousandsOfWaitingStreamsHoldNoServerThread) {
  // 2,000 open bidi streams over 10 connections, each waiting for its first
  // request. A synchronous bidi handler holds a pool thread (16) for its
  // whole call, and a connection gets at most half of them: here the server
  // keeps its thread count, and every stream still answers.
  const int threads_before = server_.Threads();
  constexpr int kConnections = 10;
  constexpr int kStreamsEach = 200;
  std::vector<std::unique_ptr<TestService::Stub>> stubs;
  for (int c = 0; c < kConnections; ++c) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    stubs.push_back(TestService::NewStub(*channel));
  }
  struct Open {
    ClientContext ctx;
    std::unique_ptr<ClientReaderWriter<Request, Response>> stream;
  };
  std::vector<std::unique_ptr<Open>> open;
  for (int i = 0; i < kConnections * kStreamsEach; ++i) {
    auto o = std::make_unique<Open>();
    o->stream = stubs[i % kConnections]->Bidi(&o->ctx);
    open.push_back(std::move(o));
  }
  // Every stream has started on the server once one answers after the rest
  // were opened (calls on a connection start in order).
  for (int c = 0; c < kConnections; ++c) {
    Request ping;
    ping.set_text("first");
    ASSERT_TRUE(open[kConnections * (kStreamsEach - 1) + c]->stream->Write(ping));
    Response resp;
    ASSERT_TRUE(open[kConnections * (kStreamsEach - 1) + c]->stream->Read(&resp));
  }
  // The event loop may start a few threads for the connections' turns; a
  // thread per stream would be 2,000.
  const int threads_open = server_.Threads();
  EXPECT_LE(threads_open, threads_before + 32)
      << "threads before " << threads_before << ", with 2,000 waiting streams " << threads_open;
  for (size_t i = 0; i < open.size(); ++i) {
    Request req;
    req.set_text(absl::StrCat("s", i));
    ASSERT_TRUE(open[i]->stream->Write(req)) << i;
  }
  for (size_t i = 0; i < open.size(); ++i) {
    Response resp;
    ASSERT_TRUE(open[i]->stream->Read(&resp)) << i;
    if (resp.text() == "first") {
      ASSERT_TRUE(open[i]->stream->Read(&resp)) << i;
    }
    EXPECT_EQ(resp.text(), absl::StrCat("s", i));
    ASSERT_TRUE(open[i]->stream->WritesDone());
  }
  for (auto& o : open) EXPECT_TRUE(o->stream->Finish().ok());
}

TEST_F(CallbackTest, ShutdownWithReactorsPendingCancelsThemAndEnds) {
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([this] {
      ClientContext ctx;
      Response resp;
      stub_->WaitForCancel(&ctx, Request(), &resp).IgnoreError();
    });
  }
  ASSERT_EQ(LastCancel("waiting"), "waiting");
  absl::SleepFor(absl::Milliseconds(100));  // all eight waiting
  EXPECT_TRUE(server_.TerminateWithin(10));
  for (auto& t : callers) t.join();
}

}  // namespace
}  // namespace ipcrpc::test
