// Generic calls in real processes: a GenericStub calling the typed test
// server (every kind, metadata, deadlines, errors), a typed stub calling a
// server whose generic service proxies every method to the typed server, and
// a GenericStub against a generic byte-level echo.

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/notification.h"

namespace ipcrpc::test {
namespace {

constexpr char kEcho[] = "/ipcrpc.test.TestService/Echo";
constexpr char kServerStream[] = "/ipcrpc.test.TestService/ServerStream";
constexpr char kClientStream[] = "/ipcrpc.test.TestService/ClientStream";
constexpr char kBidi[] = "/ipcrpc.test.TestService/Bidi";
constexpr char kWaitForCancel[] = "/ipcrpc.test.TestService/WaitForCancel";

ByteBuffer Serialize(const google::protobuf::MessageLite& message) {
  return ByteBuffer(message.SerializeAsString());
}

Response ParseResponse(const ByteBuffer& bytes) {
  Response response;
  EXPECT_TRUE(response.ParseFromString(bytes.data()));
  return response;
}

Request MakeRequest(std::string text, int count = 0) {
  Request request;
  request.set_text(std::move(text));
  request.set_count(count);
  return request;
}

std::shared_ptr<Channel> MustCreateChannel(const std::string& address) {
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address);
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

// --- A GenericStub calling the typed server ---------------------------------

class GenericStubTest : public ::testing::Test {
 protected:
  ServerProcess server_;
  GenericStub stub_{MustCreateChannel(server_.address())};
};

TEST_F(GenericStubTest, UnaryWithMetadata) {
  ClientContext ctx;
  ctx.AddMetadata("echo-color", "blue");
  Request request = MakeRequest("hello");
  request.set_payload(std::string("\0\x01\xff", 3));
  ByteBuffer response;
  ASSERT_TRUE(stub_.UnaryCall(&ctx, kEcho, Serialize(request), &response).ok());
  Response typed = ParseResponse(response);
  EXPECT_EQ(typed.text(), "hello");
  EXPECT_EQ(typed.payload(), std::string("\0\x01\xff", 3));
  EXPECT_EQ(typed.peer_pid(), getpid());
  EXPECT_EQ(ctx.GetServerInitialMetadata().find("initial-color")->second, "blue");
  EXPECT_EQ(ctx.GetServerTrailingMetadata().find("trailing-color")->second, "blue");
}

TEST_F(GenericStubTest, UnaryCallback) {
  ClientContext ctx;
  ByteBuffer response;
  absl::Status status;
  testing::Notification done;
  stub_.UnaryCall(&ctx, kEcho, Serialize(MakeRequest("async")), &response,
                  [&](absl::Status s) {
                    status = s;
                    done.Notify();
                  });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ParseResponse(response).text(), "async");
}

TEST_F(GenericStubTest, ServerStreaming) {
  ClientContext ctx;
  auto reader = stub_.ServerStreamingCall(&ctx, kServerStream, Serialize(MakeRequest("s", 5)));
  ByteBuffer message;
  int n = 0;
  while (reader->Read(&message)) {
    Response r = ParseResponse(message);
    EXPECT_EQ(r.index(), n);
    EXPECT_EQ(r.text(), "s");
    ++n;
  }
  EXPECT_EQ(n, 5);
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(GenericStubTest, ClientStreaming) {
  ClientContext ctx;
  ByteBuffer response;
  auto writer = stub_.ClientStreamingCall(&ctx, kClientStream, &response);
  for (const char* part : {"a", "b", "c"}) ASSERT_TRUE(writer->Write(Serialize(MakeRequest(part))));
  ASSERT_TRUE(writer->Finish().ok());
  Response r = ParseResponse(response);
  EXPECT_EQ(r.text(), "abc");
  EXPECT_EQ(r.index(), 3);
}

TEST_F(GenericStubTest, Bidi) {
  ClientContext ctx;
  auto stream = stub_.BidiStreamingCall(&ctx, kBidi);
  ByteBuffer message;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(stream->Write(Serialize(MakeRequest(absl::StrCat("m", i)))));
    ASSERT_TRUE(stream->Read(&message));
    Response r = ParseResponse(message);
    EXPECT_EQ(r.text(), absl::StrCat("m", i));
    EXPECT_EQ(r.index(), i);
  }
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(GenericStubTest, ErrorsAndDeadlines) {
  {
    ClientContext ctx;
    Request request;
    request.set_status_code(static_cast<int>(absl::StatusCode::kFailedPrecondition));
    request.set_status_message("not now");
    ByteBuffer response;
    absl::Status status = stub_.UnaryCall(&ctx, kEcho, Serialize(request), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(status.message(), "not now");
  }
  {
    ClientContext ctx;
    ctx.set_timeout(absl::Milliseconds(50));
    ByteBuffer response;
    absl::Status status = stub_.UnaryCall(&ctx, kWaitForCancel, ByteBuffer(), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  }
  {
    ClientContext ctx;
    ByteBuffer response;
    absl::Status status =
        stub_.UnaryCall(&ctx, "/ipcrpc.test.TestService/NoSuchMethod", ByteBuffer(), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
    EXPECT_NE(status.message().find("NoSuchMethod"), absl::string_view::npos) << status;
  }
  {
    ClientContext ctx;
    ByteBuffer response;
    absl::Status status = stub_.UnaryCall(&ctx, "/no.Such/Method", ByteBuffer(), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  }
  {  // Bytes that are not a Request: the typed handler fails to parse them.
    ClientContext ctx;
    ByteBuffer response;
    absl::Status status =
        stub_.UnaryCall(&ctx, kEcho, ByteBuffer(std::string("\xff\xff\xff", 3)), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  }
}

// --- A typed stub calling a server whose generic service proxies ----------

class GenericProxyTest : public ::testing::Test {
 protected:
  ServerProcess upstream_;
  ServerProcess proxy_{{"--proxy_to=" + upstream_.address()}};
  std::unique_ptr<TestService::Stub> stub_ =
      TestService::NewStub(MustCreateChannel(proxy_.address()));
};

TEST_F(GenericProxyTest, EveryKindThroughTheProxy) {
  {
    ClientContext ctx;
    ctx.AddMetadata("echo-k", "v");
    Response r;
    ASSERT_TRUE(stub_->Echo(&ctx, MakeRequest("hi"), &r).ok());
    EXPECT_EQ(r.text(), "hi");
    EXPECT_EQ(r.peer_pid(), proxy_.pid());  // the upstream saw the proxy call it
    EXPECT_EQ(ctx.peer().pid, proxy_.pid());
    EXPECT_EQ(ctx.GetServerInitialMetadata().find("initial-k")->second, "v");
    EXPECT_EQ(ctx.GetServerTrailingMetadata().find("trailing-k")->second, "v");
  }
  {
    ClientContext ctx;
    auto reader = stub_->ServerStream(&ctx, MakeRequest("s", 3));
    Response r;
    int n = 0;
    while (reader->Read(&r)) EXPECT_EQ(r.index(), n++);
    EXPECT_EQ(n, 3);
    EXPECT_TRUE(reader->Finish().ok());
  }
  {
    ClientContext ctx;
    Response r;
    auto writer = stub_->ClientStream(&ctx, &r);
    ASSERT_TRUE(writer->Write(MakeRequest("x")));
    ASSERT_TRUE(writer->Write(MakeRequest("y")));
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(r.text(), "xy");
  }
  {
    ClientContext ctx;
    auto stream = stub_->Bidi(&ctx);
    Response r;
    ASSERT_TRUE(stream->Write(MakeRequest("1")));
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_EQ(r.text(), "1");
    ASSERT_TRUE(stream->Write(MakeRequest("2")));
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_EQ(r.text(), "2");
    stream->WritesDone();
    EXPECT_FALSE(stream->Read(&r));
    EXPECT_TRUE(stream->Finish().ok());
  }
}

TEST_F(GenericProxyTest, ErrorsAndDeadlinesThroughTheProxy) {
  {
    ClientContext ctx;
    Request request;
    request.set_status_code(static_cast<int>(absl::StatusCode::kNotFound));
    request.set_status_message("gone");
    Response r;
    absl::Status status = stub_->Echo(&ctx, request, &r);
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(status.message(), "gone");
  }
  {
    ClientContext ctx;
    ctx.set_timeout(absl::Milliseconds(50));
    Response r;
    absl::Status status = stub_->WaitForCancel(&ctx, Request(), &r);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  }
  {  // the upstream, not the proxy, says the method is unknown
    GenericStub generic(MustCreateChannel(proxy_.address()));
    ClientContext ctx;
    ByteBuffer response;
    absl::Status status = generic.UnaryCall(&ctx, "/no.Such/Method", ByteBuffer(), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
    EXPECT_NE(status.message().find("no.Such"), absl::string_view::npos) << status;
  }
}

// --- A GenericStub against a generic echo ----------------------------------

class GenericEchoTest : public ::testing::Test {
 protected:
  ServerProcess server_{{"--generic_echo"}};
  GenericStub stub_{MustCreateChannel(server_.address())};
};

TEST_F(GenericEchoTest, BytesComeBackUnchangedForAnyMethod) {
  ClientContext ctx;
  ctx.AddMetadata("echo-x", "1");
  auto stream = stub_.BidiStreamingCall(&ctx, "/any.Thing/AtAll");
  std::vector<std::string> sent = {"", std::string(1, '\0'), "plain", std::string(100000, 'z')};
  ByteBuffer message;
  for (const std::string& bytes : sent) {
    ASSERT_TRUE(stream->Write(ByteBuffer(bytes)));
    ASSERT_TRUE(stream->Read(&message));
    EXPECT_EQ(message.data(), bytes);
  }
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&message));
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ctx.GetServerInitialMetadata().find("initial-x")->second, "1");
  EXPECT_EQ(ctx.GetServerTrailingMetadata().find("method")->second, "/any.Thing/AtAll");
}

TEST_F(GenericEchoTest, UnaryAndStatus) {
  {
    ClientContext ctx;
    ByteBuffer response;
    ASSERT_TRUE(stub_.UnaryCall(&ctx, "/a.B/C", ByteBuffer(std::string("abc")), &response).ok());
    EXPECT_EQ(response.data(), "abc");
  }
  {
    ClientContext ctx;
    ctx.AddMetadata("fail-code", absl::StrCat(static_cast<int>(absl::StatusCode::kAborted)));
    ctx.AddMetadata("fail-message", "on purpose");
    ByteBuffer response;
    auto writer = stub_.ClientStreamingCall(&ctx, "/a.B/D", &response);
    writer->Write(ByteBuffer(std::string("x")));
    absl::Status status = writer->Finish();
    EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(status.message(), "on purpose");
  }
}

// ClientHalfClosed, without waiting, says whether every request is here.
TEST_F(GenericEchoTest, AHandlerSeesWhenTheClientHasHalfClosed) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));
  auto stream = stub_.BidiStreamingCall(&ctx, "/ipcrpc.test.Probe/HalfClosed");
  ByteBuffer seen;
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.data(), "open") << "nothing sent yet";
  ASSERT_TRUE(stream->Write(ByteBuffer(std::string("a"))));
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.data(), "open") << "a request read, the client still sending";
  ASSERT_TRUE(stream->Write(ByteBuffer(std::string("wait"))));
  ASSERT_TRUE(stream->Write(ByteBuffer(std::string("b"))));
  ASSERT_TRUE(stream->Write(ByteBuffer(std::string("c"))));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.data(), "closed 2") << "half-closed with b and c not yet read";
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.data(), "rest b");
  ASSERT_TRUE(stream->Read(&seen));
  EXPECT_EQ(seen.data(), "rest c");
  EXPECT_FALSE(stream->Read(&seen));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(GenericEchoTest, RegisteredServicesStillWin) {
  auto typed = TestService::NewStub(MustCreateChannel(server_.address()));
  ClientContext ctx;
  Response r;
  ASSERT_TRUE(typed->Echo(&ctx, MakeRequest("typed"), &r).ok());
  EXPECT_EQ(r.text(), "typed");
  EXPECT_EQ(ctx.GetServerTrailingMetadata().count("method"), 0u);  // not the echo
}

}  // namespace
}  // namespace ipcrpc::test
