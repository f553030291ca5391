// Interceptors (runtime/interceptor.h) between real processes: client
// interceptors in this process, server interceptors in test_server
// (--interceptors, --deny_uid; tests/e2e/test_interceptors.h), on all four
// kinds of call, over the unix socket and shared memory.

#include <unistd.h>

#include <algorithm>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "runtime/logging_interceptor.h"
#include "runtime/metrics_interceptor.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/notification.h"

namespace ipcrpc::test {
namespace {

using experimental::ClientInterceptorFactoryInterface;
using experimental::InterceptionHookPoints;
using experimental::InterceptorBatchMethods;

// What a RecordingInterceptor saw, shared by every call of a test.
struct Seen {
  std::atomic<int> calls{0};
  std::atomic<int> sent{0};
  std::atomic<int> received{0};
  std::atomic<int> closes{0};
  std::atomic<int> statuses{0};
  std::atomic<int> initial_metadata{0};  // POST_RECV_INITIAL_METADATA with "intercepted-initial"
  std::string last_status_code;          // written by the (single) test thread's calls
};

// Adds "client-tag: <tag>" to every call, counts messages, and checks the
// status the application will see.
class RecordingInterceptor final : public experimental::Interceptor {
 public:
  RecordingInterceptor(Seen* seen, std::string tag) : seen_(seen), tag_(std::move(tag)) {}
  void Intercept(InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      ++seen_->calls;
      m->GetSendInitialMetadata()->emplace("client-tag", tag_);
      if (m->GetSendInitialMetadata()->count("fail-in-client") > 0) {
        m->FailCall(absl::FailedPreconditionError("refused by the client interceptor"));
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      EXPECT_NE(m->GetSendMessage(), nullptr);
      ++seen_->sent;
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_CLOSE)) ++seen_->closes;
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
        m->GetRecvInitialMetadata()->count("intercepted-initial") > 0) {
      ++seen_->initial_metadata;
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // The message as received, parsed; its bytes are one call away.
      EXPECT_FALSE(m->GetRecvMessage()->SerializeAsString().empty());
      ++seen_->received;
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      ++seen_->statuses;
      seen_->last_status_code = absl::StatusCodeToString(m->GetRecvStatus()->code());
      m->GetRecvTrailingMetadata()->emplace("seen-by-client-interceptor", "yes");
    }
    m->Proceed();
  }

 private:
  Seen* const seen_;
  const std::string tag_;
};

class RecordingFactory final : public ClientInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(Seen* seen) : seen_(seen) {}
  experimental::Interceptor* CreateClientInterceptor(experimental::ClientRpcInfo* info) override {
    return new RecordingInterceptor(seen_, std::string(info->method()));
  }

 private:
  Seen* const seen_;
};

std::shared_ptr<Channel> InterceptedChannel(
    const std::string& address,
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators) {
  absl::StatusOr<std::shared_ptr<Channel>> channel =
      experimental::CreateChannelWithInterceptors(address, {}, std::move(creators));
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

std::string Trailing(const ClientContext& ctx, const std::string& key) {
  auto it = ctx.GetServerTrailingMetadata().find(key);
  return it == ctx.GetServerTrailingMetadata().end() ? "<none>" : it->second;
}

// The server's arguments for a parameter "[callback-]TRANSPORT": with
// "callback-", TestService is served by reactors (test_server --callback).
std::vector<std::string> InterceptedServerArgs(absl::string_view param) {
  std::vector<std::string> args = {"--interceptors"};
  if (absl::StartsWith(param, "callback-")) args.push_back("--callback");
  return args;
}

// Every kind of call passes both sides' interceptors; metadata each side's
// interceptor adds reaches the other process. Synchronous and callback
// methods alike.
class InterceptorKindsTest : public ::testing::TestWithParam<std::string> {
 protected:
  InterceptorKindsTest() : server_(InterceptedServerArgs(GetParam())) {
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<RecordingFactory>(&seen_));
    std::string address = server_.address();
    absl::string_view transport = GetParam();
    absl::ConsumePrefix(&transport, "callback-");
    address.replace(0, address.find(':'), std::string(transport));
    stub_ = TestService::NewStub(InterceptedChannel(address, std::move(creators)));
  }

  // The trailing metadata both interceptors leave on every call.
  void ExpectIntercepted(const ClientContext& ctx, const std::string& method, int recv, int sent) {
    EXPECT_EQ(Trailing(ctx, "server-saw-client-tag"), method);
    EXPECT_EQ(Trailing(ctx, "intercepted-recv"), absl::StrCat(recv));
    EXPECT_EQ(Trailing(ctx, "intercepted-sent"), absl::StrCat(sent));
    EXPECT_EQ(Trailing(ctx, "intercepted-status"), "OK");
    EXPECT_EQ(Trailing(ctx, "seen-by-client-interceptor"), "yes");
  }

  ServerProcess server_;
  Seen seen_;
  std::shared_ptr<TestService::Stub> stub_;
};

TEST_P(InterceptorKindsTest, Unary) {
  ClientContext ctx;
  Request request;
  request.set_text("hi");
  Response response;
  ASSERT_TRUE(stub_->Echo(&ctx, request, &response).ok());
  EXPECT_EQ(response.text(), "hi");
  ExpectIntercepted(ctx, "/ipcrpc.test.TestService/Echo", 1, 1);
  // The server interceptor changed the client's metadata before the handler
  // saw it: Echo returns "echo-*" entries.
  EXPECT_EQ(Trailing(ctx, "trailing-from-interceptor"), "yes");
  EXPECT_EQ(seen_.calls, 1);
  EXPECT_EQ(seen_.sent, 1);
  EXPECT_EQ(seen_.closes, 1);
  EXPECT_EQ(seen_.received, 1);
  EXPECT_EQ(seen_.initial_metadata, 1);
  EXPECT_EQ(seen_.statuses, 1);
}

TEST_P(InterceptorKindsTest, AsyncUnary) {
  ClientContext ctx;
  Request request;
  request.set_text("later");
  Response response;
  absl::Status status;
  testing::Notification done;
  stub_->async()->Echo(&ctx, &request, &response, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status;
  ExpectIntercepted(ctx, "/ipcrpc.test.TestService/Echo", 1, 1);
  EXPECT_EQ(seen_.statuses, 1);
}

TEST_P(InterceptorKindsTest, ServerStreaming) {
  ClientContext ctx;
  Request request;
  request.set_count(3);
  request.set_text("x");  // every response serializes to some bytes
  auto reader = stub_->ServerStream(&ctx, request);
  Response response;
  int n = 0;
  while (reader->Read(&response)) ++n;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 3);
  ExpectIntercepted(ctx, "/ipcrpc.test.TestService/ServerStream", 1, 3);
  EXPECT_EQ(seen_.sent, 1);
  EXPECT_EQ(seen_.received, 3);
  EXPECT_EQ(seen_.initial_metadata, 1);
}

TEST_P(InterceptorKindsTest, ClientStreaming) {
  ClientContext ctx;
  Response response;
  auto writer = stub_->ClientStream(&ctx, &response);
  Request request;
  for (const char* text : {"a", "b", "c", "d"}) {
    request.set_text(text);
    ASSERT_TRUE(writer->Write(request));
  }
  ASSERT_TRUE(writer->WritesDone());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(response.text(), "abcd");
  ExpectIntercepted(ctx, "/ipcrpc.test.TestService/ClientStream", 4, 1);
  EXPECT_EQ(seen_.sent, 4);
  EXPECT_EQ(seen_.closes, 1);  // WritesDone, then Finish's own: one close
  EXPECT_EQ(seen_.received, 1);
}

TEST_P(InterceptorKindsTest, Bidi) {
  ClientContext ctx;
  auto stream = stub_->Bidi(&ctx);
  Request request;
  Response response;
  for (int i = 0; i < 5; ++i) {
    request.set_text(absl::StrCat(i));
    ASSERT_TRUE(stream->Write(request));
    ASSERT_TRUE(stream->Read(&response));
  }
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&response));
  ASSERT_TRUE(stream->Finish().ok());
  ExpectIntercepted(ctx, "/ipcrpc.test.TestService/Bidi", 5, 5);
  EXPECT_EQ(seen_.sent, 5);
  EXPECT_EQ(seen_.received, 5);
}

TEST_P(InterceptorKindsTest, ErrorStatusSeenByBothSides) {
  ClientContext ctx;
  Request request;
  request.set_status_code(static_cast<int>(absl::StatusCode::kNotFound));
  request.set_status_message("nope");
  Response response;
  absl::Status status = stub_->Echo(&ctx, request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Trailing(ctx, "intercepted-status"), "NOT_FOUND");
  EXPECT_EQ(seen_.last_status_code, "NOT_FOUND");
  EXPECT_EQ(seen_.received, 0);  // no response message on error
}

TEST_P(InterceptorKindsTest, ClientInterceptorFailsCallBeforeSending) {
  ClientContext ctx;
  ctx.AddMetadata("fail-in-client", "1");
  Request request;
  Response response;
  absl::Status status = stub_->Echo(&ctx, request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(seen_.statuses, 1);  // the interceptors still see the final status
  ClientContext stream_ctx;
  stream_ctx.AddMetadata("fail-in-client", "1");
  auto stream = stub_->Bidi(&stream_ctx);
  EXPECT_FALSE(stream->Write(request));
  EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Transports, InterceptorKindsTest,
                         ::testing::Values("unix", "shm", "callback-unix", "callback-shm"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The server's generic service is intercepted like any other.
TEST(InterceptorGenericTest, GenericServiceCallsAreIntercepted) {
  ServerProcess server({"--interceptors", "--generic_echo"});
  Seen seen;
  std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<RecordingFactory>(&seen));
  GenericStub stub(InterceptedChannel(server.address(), std::move(creators)));
  ClientContext ctx;
  auto stream = stub.BidiStreamingCall(&ctx, "/some.Other/Method");
  ByteBuffer message("bytes"), reply;
  ASSERT_TRUE(stream->Write(message));
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.data(), "bytes");
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(Trailing(ctx, "server-saw-client-tag"), "/some.Other/Method");
  EXPECT_EQ(Trailing(ctx, "trailing-from-interceptor"), "yes");  // GenericEcho echoes echo-*
  EXPECT_EQ(Trailing(ctx, "intercepted-recv"), "1");
  EXPECT_EQ(Trailing(ctx, "intercepted-sent"), "1");
  EXPECT_EQ(seen.received, 1);
}

// A server interceptor refuses a uid before any handler runs, on all kinds.
TEST(InterceptorAuthorizationTest, RefusesUidBeforeHandler) {
  ServerProcess server({"--interceptors", absl::StrCat("--deny_uid=", ::getuid())});
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  Request request;
  request.set_count(2);
  Response response;
  {
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(30));
    absl::Status s = stub->WaitForCancel(&ctx, request, &response);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), absl::StrCat("uid ", ::getuid()))) << s;
    // PRE_SEND_STATUS still ran for the refused call.
    EXPECT_EQ(Trailing(ctx, "intercepted-status"), "PERMISSION_DENIED");
  }
  {
    ClientContext ctx;
    auto reader = stub->ServerStream(&ctx, request);
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().code(), absl::StatusCode::kPermissionDenied);
  }
  {
    ClientContext ctx;
    auto writer = stub->ClientStream(&ctx, &response);
    writer->Write(request);  // may or may not be accepted before the refusal arrives
    EXPECT_EQ(writer->Finish().code(), absl::StatusCode::kPermissionDenied);
  }
  {
    ClientContext ctx;
    auto stream = stub->Bidi(&ctx);
    stream->Write(request);
    EXPECT_FALSE(stream->Read(&response));
    EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kPermissionDenied);
  }
  // WaitForCancel's handler never ran: it would have recorded "waiting".
  ClientContext ctx;
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub->LastCancel(&ctx, empty, &response).ok());
  EXPECT_EQ(response.text(), "none");
  // The server's metrics count the refusals.
  ClientContext metrics_ctx;
  ASSERT_TRUE(stub->ServerMetrics(&metrics_ctx, empty, &response).ok());
  for (const char* method : {"WaitForCancel", "ServerStream", "ClientStream", "Bidi"}) {
    EXPECT_TRUE(absl::StrContains(
        response.text(), absl::StrCat("/ipcrpc.test.TestService/", method,
                                      " calls=1 errors=1 PERMISSION_DENIED=1")))
        << response.text();
  }
}

// Metrics on both sides and the server's log line per call.
TEST(InterceptorMetricsTest, CountsCallsErrorsAndLogsEachCall) {
  testing::ScopedTempDir dir;
  const std::string log = dir.File("calls.log");
  ServerProcess server({"--interceptors", "--log_calls_to=" + log});
  auto metrics = std::make_shared<CallMetrics>();
  std::vector<std::string> client_lines;
  std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators;
  creators.push_back(ClientMetricsInterceptorFactory(metrics));
  creators.push_back(std::make_unique<ClientLoggingInterceptorFactory>(
      [&client_lines](const std::string& line) { client_lines.push_back(line); }));
  auto stub = TestService::NewStub(InterceptedChannel(server.address(), std::move(creators)));

  Response response;
  for (int i = 0; i < 5; ++i) {
    ClientContext ctx;
    Request request;
    if (i >= 3) request.set_status_code(static_cast<int>(absl::StatusCode::kNotFound));
    stub->Echo(&ctx, request, &response).IgnoreError();
  }
  {
    ClientContext ctx;
    Request request;
    request.set_count(2);
    auto reader = stub->ServerStream(&ctx, request);
    while (reader->Read(&response)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }

  std::map<std::string, MethodMetrics> client = metrics->Snapshot();
  const MethodMetrics& echo = client["/ipcrpc.test.TestService/Echo"];
  EXPECT_EQ(echo.calls, 5u);
  EXPECT_EQ(echo.errors, 2u);
  EXPECT_EQ(echo.by_code.at(absl::StatusCode::kOk), 3u);
  EXPECT_EQ(echo.by_code.at(absl::StatusCode::kNotFound), 2u);
  EXPECT_EQ(echo.latency.total(), 5u);
  EXPECT_GT(echo.latency.Percentile(0.5), absl::ZeroDuration());
  EXPECT_EQ(client["/ipcrpc.test.TestService/ServerStream"].calls, 1u);
  ASSERT_EQ(client_lines.size(), 6u);
  EXPECT_TRUE(absl::StartsWith(client_lines[3], "ipcrpc client /ipcrpc.test.TestService/Echo "))
      << client_lines[3];
  EXPECT_TRUE(absl::StrContains(client_lines[3], absl::StrCat("peer=pid:", server.pid())))
      << client_lines[3];
  EXPECT_TRUE(absl::StrContains(client_lines[3], "NOT_FOUND")) << client_lines[3];

  ClientContext ctx;
  ASSERT_TRUE(stub->ServerMetrics(&ctx, google::protobuf::Empty(), &response).ok());
  EXPECT_TRUE(absl::StrContains(
      response.text(),
      "/ipcrpc.test.TestService/Echo calls=5 errors=2 OK=3 NOT_FOUND=2 latency_count=5"))
      << response.text();
  EXPECT_TRUE(absl::StrContains(response.text(), "/ipcrpc.test.TestService/ServerStream calls=1"))
      << response.text();

  // The server wrote each line before sending the status: all 7 are there
  // (ServerMetrics' own included).
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_TRUE(absl::StartsWith(lines[0], "ipcrpc server /ipcrpc.test.TestService/Echo peer=pid:" +
                                             absl::StrCat(::getpid())))
      << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], " OK ")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[4], "NOT_FOUND")) << lines[4];
}

}  // namespace
}  // namespace ipcrpc::test
