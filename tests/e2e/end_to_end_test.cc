// End-to-end tests: a real server process (test_server) and this client
// process, over a unix socket (and over a spawned worker's socketpair).
// Over 500 lines because it is one conformance suite: every TEST_P runs once
// per transport against the same fixture, and splitting it would split the
// suite's single leak check. (FromServerContext's tests: propagation_test.cc.)

#include <signal.h>
#include <spawn.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/transport.pb.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/ipc_leak_check.h"
#include "tests/testing/notification.h"
#include "tests/testing/temp_dir.h"
#include "transports/unix_socket.h"
#include "wire/frame.h"

namespace ipcrpc::test {
namespace {

// The conformance suite: every test below runs once per transport; the
// server listens on its unix socket and the client asks for GetParam().
class EndToEndTest : public ::testing::TestWithParam<std::string> {
 protected:
  // The client's address for `server`, with this run's transport.
  static std::string ClientAddress(const ServerProcess& server) {
    return GetParam() + ":" + server.socket_path();
  }

  void SetUp() override {
    auto channel = CreateChannel(ClientAddress(server_));
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
    stub_ = TestService::NewStub(channel_);
  }

  ServerProcess server_;
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<TestService::Stub> stub_;
};

TEST_P(EndToEndTest, UnaryEchoWithPeerIdentity) {
  ClientContext ctx;
  Request req;
  req.set_text("hello");
  Response resp;
  ASSERT_TRUE(stub_->Echo(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.text(), "hello");
  EXPECT_EQ(resp.peer_pid(), getpid());
  EXPECT_EQ(ctx.peer().pid, server_.pid());
  EXPECT_EQ(ctx.peer().uid, getuid());
}

TEST_P(EndToEndTest, MetadataBothWays) {
  ClientContext ctx;
  ctx.AddMetadata("echo-color", "blue");
  ctx.AddMetadata("echo-bytes", std::string("\0\xff", 2));
  Request req;
  Response resp;
  ASSERT_TRUE(stub_->Echo(&ctx, req, &resp).ok());
  auto& initial = ctx.GetServerInitialMetadata();
  auto& trailing = ctx.GetServerTrailingMetadata();
  ASSERT_EQ(initial.count("initial-color"), 1u);
  EXPECT_EQ(initial.find("initial-color")->second, "blue");
  EXPECT_EQ(trailing.find("trailing-color")->second, "blue");
  EXPECT_EQ(trailing.find("trailing-bytes")->second, std::string("\0\xff", 2));
}

TEST_P(EndToEndTest, InvalidMetadataKeyIsRejectedBeforeSending) {
  ClientContext ctx;
  ctx.AddMetadata("Upper", "x");
  Response resp;
  absl::Status s = stub_->Echo(&ctx, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_P(EndToEndTest, EveryErrorCodeTravels) {
  for (int code = 1; code <= 16; ++code) {
    ClientContext ctx;
    Request req;
    req.set_status_code(code);
    req.set_status_message(absl::StrCat("failure ", code));
    Response resp;
    absl::Status s = stub_->Echo(&ctx, req, &resp);
    EXPECT_EQ(static_cast<int>(s.code()), code);
    EXPECT_EQ(s.message(), absl::StrCat("failure ", code));
  }
}

TEST_P(EndToEndTest, ServerStreaming) {
  ClientContext ctx;
  Request req;
  req.set_count(50);
  req.set_text("s");
  auto reader = stub_->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  while (reader->Read(&r)) EXPECT_EQ(r.index(), n++);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 50);
}

TEST_P(EndToEndTest, ServerStreamingErrorAfterMessages) {
  ClientContext ctx;
  Request req;
  req.set_count(3);
  req.set_status_code(static_cast<int>(absl::StatusCode::kAborted));
  req.set_status_message("stopped");
  auto reader = stub_->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  while (reader->Read(&r)) ++n;
  absl::Status s = reader->Finish();
  EXPECT_EQ(n, 3);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(s.message(), "stopped");
}

TEST_P(EndToEndTest, ClientStreaming) {
  ClientContext ctx;
  Response resp;
  auto writer = stub_->ClientStream(&ctx, &resp);
  for (int i = 0; i < 20; ++i) {
    Request req;
    req.set_text(std::to_string(i % 10));
    ASSERT_TRUE(writer->Write(req));
  }
  ASSERT_TRUE(writer->WritesDone());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.index(), 20);
  EXPECT_EQ(resp.text(), "01234567890123456789");
}

TEST_P(EndToEndTest, BidiChat) {
  ClientContext ctx;
  auto stream = stub_->Bidi(&ctx);
  for (int i = 0; i < 10; ++i) {
    Request req;
    req.set_text(absl::StrCat("m", i));
    ASSERT_TRUE(stream->Write(req));
    Response resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.text(), absl::StrCat("m", i));
    EXPECT_EQ(resp.index(), i);
  }
  stream->WritesDone();
  Response extra;
  EXPECT_FALSE(stream->Read(&extra));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_P(EndToEndTest, BidiFlowControlBoundsAFastWriter) {
  // Write 64 MiB through a bidi stream while reading the echoes from another
  // thread: flow control must keep both sides moving without unbounded buffers.
  ClientContext ctx;
  auto stream = stub_->Bidi(&ctx);
  constexpr int kCount = 256;
  std::string payload(256 * 1024, 'p');
  std::atomic<int> read{0};
  std::thread reader([&] {
    Response r;
    while (stream->Read(&r)) {
      EXPECT_EQ(r.payload().size(), payload.size());
      ++read;
    }
  });
  Request req;
  req.set_payload(payload);
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  reader.join();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(read.load(), kCount);
}

TEST_P(EndToEndTest, UnimplementedMethodAndService) {
  TestService::Service defaults;  // every method UNIMPLEMENTED by default
  ClientContext c1;
  Response resp;
  MethodDescriptor unknown_method{"/ipcrpc.test.TestService/NoSuch", RpcKind::kUnary};
  absl::Status s = internal::BlockingUnaryCall(*channel_, unknown_method, &c1, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("NoSuch"), std::string::npos) << s;
  ClientContext c2;
  MethodDescriptor unknown_service{"/nope.Svc/M", RpcKind::kUnary};
  s = internal::BlockingUnaryCall(*channel_, unknown_service, &c2, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("unknown service nope.Svc"), std::string::npos) << s;
}

TEST_P(EndToEndTest, LargeMessagesArriveIntactBetweenHeadersAndTrailers) {
  // Messages from 128 KiB up are serialized into the transport in chunks
  // (FramedConnection::WriteMessage); the frames around them (CALL_START and
  // half-close from the client, HEADERS and TRAILERS with metadata from the
  // server) must stay in order and every byte must arrive.
  for (size_t size : {(128u << 10) - 1, 128u << 10, (1u << 20) + 12345}) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    Request req;
    req.set_payload(payload);
    req.set_text("after the payload");
    ClientContext ctx;
    ctx.AddMetadata("echo-size", std::to_string(size));
    Response resp;
    ASSERT_TRUE(stub_->Echo(&ctx, req, &resp).ok()) << size;
    EXPECT_TRUE(resp.payload() == payload) << "payload of " << size << " bytes differs";
    EXPECT_EQ(resp.text(), "after the payload");
    auto initial = ctx.GetServerInitialMetadata().find("initial-size");
    ASSERT_NE(initial, ctx.GetServerInitialMetadata().end());
    EXPECT_EQ(initial->second, std::to_string(size));
    auto trailing = ctx.GetServerTrailingMetadata().find("trailing-size");
    ASSERT_NE(trailing, ctx.GetServerTrailingMetadata().end());
    EXPECT_EQ(trailing->second, std::to_string(size));
  }
}

TEST_P(EndToEndTest, ThreeMebibytesPassFiveAreRejectedOnBothSides) {
  Request req;
  req.set_payload(std::string(3 << 20, 'a'));
  ClientContext c1;
  Response resp;
  ASSERT_TRUE(stub_->Echo(&c1, req, &resp).ok());
  EXPECT_EQ(resp.payload().size(), 3u << 20);

  // Client side: the request is too large to send.
  req.set_payload(std::string(5 << 20, 'b'));
  ClientContext c2;
  absl::Status s = stub_->Echo(&c2, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;

  // Server side: a client that allows itself 8 MiB still hits the server's 4 MiB.
  ChannelOptions big;
  big.max_send_message_size = 8 << 20;
  big.max_receive_message_size = 8 << 20;
  auto channel = CreateChannel(ClientAddress(server_), big);
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  ClientContext c3;
  s = stub->Echo(&c3, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("server"), std::string::npos) << s;

  // A response larger than the client accepts: the server refuses to send it.
  ChannelOptions small;
  small.max_receive_message_size = 1 << 20;
  auto small_channel = CreateChannel(ClientAddress(server_), small);
  ASSERT_TRUE(small_channel.ok());
  auto small_stub = TestService::NewStub(*small_channel);
  req.set_payload(std::string(2 << 20, 'c'));
  ClientContext c4;
  s = small_stub->Echo(&c4, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;

  // The connection is still fine afterwards.
  ClientContext c5;
  req.set_payload("ok");
  EXPECT_TRUE(stub_->Echo(&c5, req, &resp).ok());
}

TEST_P(EndToEndTest, DeadlineExpiresMidStream) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(150));
  Request req;
  req.set_count(100);
  req.set_delay_ms(20);
  auto reader = stub_->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  absl::Time start = absl::Now();
  while (reader->Read(&r)) ++n;
  absl::Status s = reader->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GT(n, 0);
  EXPECT_LT(n, 100);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// A deadline ends a call, never its connection: a large request whose
// deadline passes while it is being written is finished on the wire (the frame
// was started) and the call ends DEADLINE_EXCEEDED; another stream on the same
// channel carries on. (Before: the write was cut at the deadline mid-frame and
// the transport shut down, failing every call on the channel UNAVAILABLE.)
TEST_P(EndToEndTest, ADeadlineMidWriteEndsTheCallNotTheConnection) {
  ClientContext bidi_ctx;
  bidi_ctx.set_timeout(absl::Seconds(30));
  auto bidi = stub_->Bidi(&bidi_ctx);
  Request ping;
  ping.set_text("before");
  Response pong;
  ASSERT_TRUE(bidi->Write(ping));
  ASSERT_TRUE(bidi->Read(&pong));
  EXPECT_EQ(pong.text(), "before");

  for (int i = 0; i < 3; ++i) {
    ClientContext ctx;
    ctx.set_timeout(absl::Milliseconds(1));
    Request big;
    big.set_payload(std::string(3 << 20, 'x'));
    Response resp;
    absl::Status s = stub_->Echo(&ctx, big, &resp);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  }

  ping.set_text("after");
  ASSERT_TRUE(bidi->Write(ping)) << bidi->Finish();
  ASSERT_TRUE(bidi->Read(&pong)) << bidi->Finish();
  EXPECT_EQ(pong.text(), "after");
  ASSERT_TRUE(bidi->WritesDone());
  EXPECT_TRUE(bidi->Finish().ok());
  ClientContext ctx;
  Response resp;
  EXPECT_TRUE(stub_->Echo(&ctx, Request(), &resp).ok());
}

TEST_P(EndToEndTest, UnaryDeadline) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(50));
  Request req;
  req.set_delay_ms(2000);
  Response resp;
  absl::Status s = stub_->Echo(&ctx, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  // The server saw the deadline too.
  ClientContext c2;
  c2.set_timeout(absl::Milliseconds(100));
  ASSERT_EQ(stub_->WaitForCancel(&c2, Request(), &resp).code(),
            absl::StatusCode::kDeadlineExceeded);
  absl::SleepFor(absl::Milliseconds(50));
  ClientContext c3;
  ASSERT_TRUE(stub_->LastCancel(&c3, google::protobuf::Empty(), &resp).ok());
  EXPECT_EQ(resp.text(), "deadline");
}

TEST_P(EndToEndTest, ClientCancelIsSeenByTheServerHandler) {
  ClientContext ctx;
  Response resp;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(100));
    ctx.TryCancel();
  });
  absl::Status s = stub_->WaitForCancel(&ctx, Request(), &resp);
  canceller.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  // Ask the server what its handler saw (it may need a moment to notice).
  std::string seen;
  for (int i = 0; i < 200 && seen != "cancelled"; ++i) {
    ClientContext c2;
    ASSERT_TRUE(stub_->LastCancel(&c2, google::protobuf::Empty(), &resp).ok());
    seen = resp.text();
    if (seen != "cancelled") absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(seen, "cancelled");
}

TEST_P(EndToEndTest, CancelBeforeStart) {
  ClientContext ctx;
  ctx.TryCancel();
  Response resp;
  EXPECT_EQ(stub_->Echo(&ctx, Request(), &resp).code(), absl::StatusCode::kCancelled);
}

TEST_P(EndToEndTest, HundredConcurrentCallsFromSeveralThreads) {
  constexpr int kThreads = 10;
  constexpr int kCallsPerThread = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  testing::Notification go;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.WaitForNotification();
      for (int i = 0; i < kCallsPerThread; ++i) {
        ClientContext ctx;
        Request req;
        req.set_text(absl::StrCat(t, "-", i));
        req.set_delay_ms(i % 3);
        Response resp;
        absl::Status s = stub_->Echo(&ctx, req, &resp);
        EXPECT_TRUE(s.ok()) << s;
        if (s.ok() && resp.text() == req.text()) ++ok;
      }
    });
  }
  go.Notify();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kCallsPerThread);
}

TEST_P(EndToEndTest, HundredAsyncCallsInFlightAtOnce) {
  constexpr int kCalls = 100;
  std::vector<std::unique_ptr<ClientContext>> contexts;
  std::vector<Response> responses(kCalls);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, ok = 0;
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(std::make_unique<ClientContext>());
    Request req;
    req.set_text(absl::StrCat(i));
    req.set_delay_ms(20);
    stub_->async()->Echo(contexts.back().get(), &req, &responses[i], [&, i](absl::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (s.ok() && responses[i].text() == absl::StrCat(i)) ++ok;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return done == kCalls; }));
  EXPECT_EQ(ok, kCalls);
}

TEST_P(EndToEndTest, AsyncDeadline) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(50));
  Request req;
  req.set_delay_ms(3000);
  Response resp;
  testing::Notification done;
  absl::Status result;
  stub_->async()->Echo(&ctx, &req, &resp, [&](absl::Status s) {
    result = s;
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(result.code(), absl::StatusCode::kDeadlineExceeded) << result;
}

TEST_P(EndToEndTest, ShutdownDrainsCallsInFlightAndRefusesNewOnes) {
  ClientContext ctx;
  Request req;
  req.set_text("slow");
  req.set_delay_ms(300);
  Response resp;
  absl::Status slow_status;
  std::thread slow([&] { slow_status = stub_->Echo(&ctx, req, &resp); });
  absl::SleepFor(absl::Milliseconds(100));
  std::string socket_path = server_.socket_path();
  int exit_status = server_.Terminate();  // drains for up to 2 s
  slow.join();
  EXPECT_TRUE(slow_status.ok()) << slow_status;
  EXPECT_EQ(resp.text(), "slow");
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);
  struct stat st;
  EXPECT_NE(stat(socket_path.c_str(), &st), 0) << "socket file left behind";
  ClientContext c2;
  absl::Status s = stub_->Echo(&c2, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_P(EndToEndTest, ShutdownDeadlineCancelsCallsThatDoNotFinish) {
  ServerProcess quick({"--grace_ms=100"});
  auto channel = CreateChannel(ClientAddress(quick));
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  Response resp;
  absl::Status status;
  std::thread waiting([&] { status = stub->WaitForCancel(&ctx, Request(), &resp); });
  absl::SleepFor(absl::Milliseconds(100));
  absl::Time start = absl::Now();
  quick.Terminate();
  waiting.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(status.code() == absl::StatusCode::kCancelled ||
              status.code() == absl::StatusCode::kUnavailable)
      << status;
}

TEST_P(EndToEndTest, CrashedServerIsUnavailableNotAHang) {
  ClientContext ctx;
  Response resp;
  absl::Status status;
  std::thread waiting([&] { status = stub_->WaitForCancel(&ctx, Request(), &resp); });
  absl::SleepFor(absl::Milliseconds(100));
  server_.Kill();
  waiting.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("lost"), std::string::npos) << status;
}

// A server killed while the channel is idle and restarted before the next
// call: the channel notices the dead connection (its transport reports the
// hang-up) and the call goes to the new server. (Before: the call failed
// UNAVAILABLE on the stale connection, on every transport.)
TEST_P(EndToEndTest, AServerRestartedWhileTheChannelIsIdleIsReachedByTheNextCall) {
  {
    ClientContext ctx;
    Response resp;
    ASSERT_TRUE(stub_->Echo(&ctx, Request(), &resp).ok());
  }
  const pid_t old_pid = server_.pid();
  server_.Restart();
  ASSERT_NE(server_.pid(), old_pid);
  absl::SleepFor(absl::Milliseconds(50));  // the channel has been idle for a while
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(5));
  Request req;
  req.set_text("again");
  Response resp;
  absl::Status s = stub_->Echo(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(resp.text(), "again");
  EXPECT_EQ(ctx.peer().pid, server_.pid());
}

// gRPC's wait-for-ready: with the server gone, a fail-fast call is
// UNAVAILABLE at once, and a wait-for-ready call waits and succeeds as soon as
// a server is there again.
TEST_P(EndToEndTest, WaitForReadyWaitsForTheServerFailFastDoesNot) {
  const std::string address = ClientAddress(server_);
  server_.Kill();
  {
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(5));
    Response resp;
    absl::Time start = absl::Now();
    absl::Status s = stub_->Echo(&ctx, Request(), &resp);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  }
  {
    ClientContext ctx;
    ctx.set_timeout(absl::Milliseconds(200));
    ctx.set_wait_for_ready(true);
    Response resp;
    absl::Status s = stub_->Echo(&ctx, Request(), &resp);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  }
  std::thread restart([&] {
    absl::SleepFor(absl::Milliseconds(100));
    server_.Restart();
  });
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));
  ctx.set_wait_for_ready(true);
  Response resp;
  absl::Status s = stub_->Echo(&ctx, Request(), &resp);
  restart.join();
  EXPECT_TRUE(s.ok()) << s;
}

// gRPC's timeout_on_sleeping_server with a fresh channel each time: when the
// call's deadline runs out while the connection is still being set up, the
// status is DEADLINE_EXCEEDED, never UNAVAILABLE. (Before: about half the
// runs said UNAVAILABLE.)
TEST_P(EndToEndTest, ADeadlineThatRunsOutDuringSetUpIsDeadlineExceeded) {
  for (int micros : {1, 20, 50, 100, 200, 500, 1000, 2000, 5000}) {
    auto channel = CreateChannel(ClientAddress(server_));
    ASSERT_TRUE(channel.ok()) << channel.status();
    auto stub = TestService::NewStub(*channel);
    ClientContext ctx;
    ctx.set_timeout(absl::Microseconds(micros));
    Request req;
    req.set_delay_ms(10000);
    Response resp;
    absl::Status s = stub->Echo(&ctx, req, &resp);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << micros << " us: " << s;
  }
}

TEST_P(EndToEndTest, TransportIsTheOneAskedFor) {
  ClientContext ctx;
  Response resp;
  ASSERT_TRUE(stub_->Echo(&ctx, Request(), &resp).ok());
  // The channel's target names the transport it asked for; the call says
  // what carried it.
  EXPECT_EQ(channel_->target().rfind(GetParam() == "unix" ? "unix:" : GetParam() + ":", 0), 0u)
      << channel_->target();
  if (GetParam() != "unix" && GetParam() != "auto") {
    EXPECT_EQ(ctx.transport().rfind(GetParam() + " via ", 0), 0u) << ctx.transport();
  }
}

// After the whole suite, nothing may remain: sockets, FIFOs, /dev/shm
// entries, SysV queues.
const auto* const kLeakCheck =
    ::testing::AddGlobalTestEnvironment(new testing::IpcLeakCheck);

INSTANTIATE_TEST_SUITE_P(Transports, EndToEndTest, ::testing::ValuesIn(TransportsUnderTest()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '+') c = '_';
                           }
                           return name;
                         });

TEST(ConnectTest, ServerThatIsNotThereIsUnavailableFast) {
  testing::ScopedTempDir dir;
  auto channel = CreateChannel("unix:" + dir.File("absent.sock"));
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  Response resp;
  absl::Time start = absl::Now();
  absl::Status s = stub->Echo(&ctx, Request(), &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("is the server running"), std::string::npos) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // Streaming calls report the same through Finish().
  ClientContext c2;
  auto reader = stub->ServerStream(&c2, Request());
  Response r;
  EXPECT_FALSE(reader->Read(&r));
  EXPECT_EQ(reader->Finish().code(), absl::StatusCode::kUnavailable);
}

TEST(ConnectTest, UnsupportedAddressNamesTheTransport) {
  auto channel = CreateChannel("carrier-pigeon:home");
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(channel.status().message().find("carrier-pigeon"), std::string::npos);
}

TEST(WorkerTest, SpawnedWorkerServesOverInheritedSocketpair) {
  auto worker = WorkerProcess::Spawn({TestServerPath()});
  ASSERT_TRUE(worker.ok()) << worker.status();
  {
    auto channel = CreateChannelFromTransport(worker->TakeTransport());
    auto stub = TestService::NewStub(channel);
    ClientContext ctx;
    Request req;
    req.set_text("worker");
    Response resp;
    ASSERT_TRUE(stub->Echo(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.text(), "worker");
    EXPECT_EQ(ctx.peer().pid, worker->pid());
  }
  // Closing the channel closes the connection; the worker's server has nothing
  // left to serve and exits by itself.
  auto status = worker->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace ipcrpc::test

namespace ipcrpc::test {
namespace {

// A spawned worker's socketpair moves to every other transport, and the
// worker still exits by itself when the parent hangs up.
TEST(WorkerTest, SpawnedWorkerConnectionUpgradesToEveryTransport) {
  for (const std::string& transport : TransportsUnderTest()) {
    SCOPED_TRACE(transport);
    auto worker = WorkerProcess::Spawn({TestServerPath()});
    ASSERT_TRUE(worker.ok()) << worker.status();
    {
      auto upgraded = UpgradeConnection(worker->TakeSocket(), transport);
      ASSERT_TRUE(upgraded.ok()) << upgraded.status();
      auto stub = TestService::NewStub(CreateChannelFromTransport(std::move(*upgraded)));
      ClientContext ctx;
      Request req;
      req.set_payload(std::string(100000, 'w'));
      Response resp;
      ASSERT_TRUE(stub->Echo(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.payload().size(), 100000u);
      EXPECT_EQ(ctx.peer().pid, worker->pid());
      if (transport != "unix" && transport != "auto") {
        EXPECT_EQ(ctx.transport().rfind(transport + " via ", 0), 0u) << ctx.transport();
      }
    }
    auto status = worker->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  }
}

}  // namespace
}  // namespace ipcrpc::test

namespace ipcrpc::test {
namespace {

// Sizes of the shared-memory regions (memfd mappings) process `pid` maps.
std::vector<uint64_t> MemfdSizes(pid_t pid) {
  std::vector<uint64_t> sizes;
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:ipcrpc-shm") == std::string::npos) continue;
    uint64_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &start, &end) == 2) sizes.push_back(end - start);
  }
  return sizes;
}

// The server decides how much memory a connection's rings may commit: a
// client that asks for 1 GiB rings gets the server's maximum (4 MiB by
// default). (Before: the server committed 2 GiB for that one connection.)
TEST(ShmLimitsTest, AClientCannotMakeTheServerCommitMoreThanItsMaximumRing) {
  ServerProcess server;
  config::Config greedy;
  config::ChannelConfig* entry = greedy.add_channel();
  entry->set_target("*");
  entry->mutable_tuning()->mutable_shm()->set_ring_bytes(uint64_t{1} << 30);
  auto channel = CreateChannel("shm:" + server.socket_path(), {}, greedy);
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  Response resp;
  ASSERT_TRUE(stub->Echo(&ctx, Request(), &resp).ok());
  EXPECT_NE(ctx.transport().find("shm"), std::string::npos) << ctx.transport();
  std::vector<uint64_t> sizes = MemfdSizes(server.pid());
  ASSERT_EQ(sizes.size(), 1u);
  EXPECT_EQ(sizes[0], 4096u + 2 * (4u << 20)) << "4 KiB header + two 4 MiB rings";
}

// Asks the server at `socket_path` for `transport` and reads its offer, then
// stops: the server waits for TRANSPORT_ACK with the offered objects made.
absl::StatusOr<wire::TransportOffer> RequestAndStop(const std::string& socket_path,
                                                    const std::string& transport,
                                                    std::unique_ptr<Transport>* connection) {
  IPCRPC_ASSIGN_OR_RETURN(auto connector, UnixSocketConnector::Create("unix:" + socket_path));
  IPCRPC_ASSIGN_OR_RETURN(*connection, connector->Connect(absl::Now() + absl::Seconds(5)));
  wire::TransportRequest request;
  request.add_transports(transport);
  std::string out;
  internal::AppendProtoFrame(internal::FrameType::kTransportRequest, 0, request,
                             request.ByteSizeLong(), &out);
  absl::string_view chunks[] = {out};
  IPCRPC_RETURN_IF_ERROR((*connection)->Write(chunks, absl::Now() + absl::Seconds(5)));
  std::string in;
  char buf[4096];
  std::vector<ScopedFd> fds;
  while (in.size() < internal::kFrameHeaderSize ||
         in.size() < internal::kFrameHeaderSize +
                         internal::DecodeFrameHeader(in.data())->length) {
    IPCRPC_ASSIGN_OR_RETURN(size_t n, (*connection)->ReadWithFds(absl::MakeSpan(buf), &fds,
                                                                 absl::Now() + absl::Seconds(5)));
    in.append(buf, n);
  }
  wire::TransportOffer offer;
  if (!offer.ParseFromArray(in.data() + internal::kFrameHeaderSize,
                            static_cast<int>(in.size() - internal::kFrameHeaderSize))) {
    return absl::DataLossError("bad offer");
  }
  return offer;
}

bool QueueExists(int id) {
  msqid_ds ds;
  return ::msgctl(id, IPC_STAT, &ds) == 0;
}

// A server killed in the middle of negotiating msgq and fifo leaves its
// queues and FIFO directory; the next server to start removes them.
// (Before: they stayed until reboot, and could exhaust msgmni.)
TEST(ServerCrashTest, ObjectsOfAServerKilledMidNegotiationAreRemovedByTheNextServer) {
  ServerProcess server;
  std::unique_ptr<Transport> c1, c2;
  auto msgq = RequestAndStop(server.socket_path(), "msgq", &c1);
  ASSERT_TRUE(msgq.ok()) << msgq.status();
  ASSERT_EQ(msgq->transport(), "msgq") << msgq->error();
  auto fifo = RequestAndStop(server.socket_path(), "fifo", &c2);
  ASSERT_TRUE(fifo.ok()) << fifo.status();
  ASSERT_EQ(fifo->transport(), "fifo") << fifo->error();
  const std::string fifo_dir = fifo->fifo().client_to_server_path().substr(
      0, fifo->fifo().client_to_server_path().rfind('/'));
  server.Kill();
  c1.reset();
  c2.reset();
  struct stat st;
  ASSERT_TRUE(QueueExists(msgq->msgq().client_to_server_id()));
  ASSERT_TRUE(QueueExists(msgq->msgq().server_to_client_id()));
  ASSERT_EQ(::stat(fifo_dir.c_str(), &st), 0) << fifo_dir;
  ServerProcess next;  // sweeps when it starts listening
  EXPECT_FALSE(QueueExists(msgq->msgq().client_to_server_id()));
  EXPECT_FALSE(QueueExists(msgq->msgq().server_to_client_id()));
  EXPECT_NE(::stat(fifo_dir.c_str(), &st), 0) << fifo_dir << " is still there";
}

// The server's config file decides which transports clients may choose.
TEST(ServerConfigTest, AllowedTransportsAreEnforcedAndAutoFallsBack) {
  ServerProcess server({}, R"pb(server { allowed_transports: [ "unix", "fifo" ] })pb");
  auto shm = CreateChannel("shm:" + server.socket_path());
  ASSERT_TRUE(shm.ok());
  ClientContext c1;
  Response resp;
  absl::Status refused = TestService::NewStub(*shm)->Echo(&c1, Request(), &resp);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("allows [unix, fifo]"), std::string::npos) << refused;

  auto fifo = CreateChannel("fifo:" + server.socket_path());
  ASSERT_TRUE(fifo.ok());
  ClientContext c2;
  EXPECT_TRUE(TestService::NewStub(*fifo)->Echo(&c2, Request(), &resp).ok());
  EXPECT_EQ(c2.transport().rfind("fifo via ", 0), 0u) << c2.transport();

  auto automatic = CreateChannel("auto:" + server.socket_path());
  ASSERT_TRUE(automatic.ok());
  ClientContext c3;
  EXPECT_TRUE(TestService::NewStub(*automatic)->Echo(&c3, Request(), &resp).ok());
  EXPECT_EQ(c3.transport().rfind("unix:", 0), 0u) << c3.transport();
}

TEST(ServerConfigTest, ABrokenConfigFileStopsTheServerWithAClearError) {
  testing::ScopedTempDir dir;
  std::string path = dir.File("bad.textproto");
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("server { allowed_transports: [\"carrier-pigeon\"] }", f);
  std::fclose(f);
  setenv("IPCRPC_CONFIG", path.c_str(), 1);
  TestService::Service service;
  ServerBuilder builder;
  builder.AddListeningAddress("unix:" + dir.File("s.sock")).RegisterService(&service);
  auto server = builder.BuildAndStart();
  unsetenv("IPCRPC_CONFIG");
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
  EXPECT_NE(server.status().message().find("carrier-pigeon"), std::string::npos);
}

}  // namespace
}  // namespace ipcrpc::test
