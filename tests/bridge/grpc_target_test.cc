// An ipcrpc generated stub calling a plain grpc++ server (another process,
// tests/bridge/plain_grpc_server) two ways, with the same assertions:
//   * "grpc:127.0.0.1:PORT" — the address scheme (bridge/grpc_channel.h);
//   * "unix:DIR/gw.sock" — an ipcrpc_gateway process (--listen=unix:...
//     --to=grpc:127.0.0.1:PORT) in between;
// and grpcs: to an ipcrpc_gateway serving TLS.
// All four kinds, metadata both ways (incl. -bin), status code + message +
// details, deadline, cancellation, bad input; and for the gateway, that a
// client that stops reading a large stream leaves the gateway's memory
// bounded.

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/bridge/child_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/temp_dir.h"

namespace ipcrpc::test {
namespace {

enum class Route { kAddressScheme, kGateway };

class GrpcTargetTest : public ::testing::TestWithParam<Route> {
 protected:
  void SetUp() override {
    grpc_server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{RunfilePath("tests/bridge/plain_grpc_server")});
    ASSERT_TRUE(grpc_server_->Start()) << grpc_server_->output();
    std::string grpc_address = "grpc:127.0.0.1:" + grpc_server_->Value("GRPC_PORT");
    if (GetParam() == Route::kAddressScheme) {
      address_ = grpc_address;
    } else {
      address_ = "unix:" + dir_.File("gw.sock");
      gateway_ = std::make_unique<ChildProcess>(std::vector<std::string>{
          RunfilePath("bridge/ipcrpc_gateway"), "--listen=" + address_, "--to=" + grpc_address});
      ASSERT_TRUE(gateway_->Start()) << gateway_->output();
    }
    auto channel = CreateChannel(address_);
    ASSERT_TRUE(channel.ok()) << channel.status();
    stub_ = TestService::NewStub(*channel);
  }

  std::string LastCancel() {
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(5));
    google::protobuf::Empty empty;
    Response r;
    absl::Status s = stub_->LastCancel(&ctx, empty, &r);
    return s.ok() ? r.text() : s.ToString();
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<ChildProcess> grpc_server_;
  std::unique_ptr<ChildProcess> gateway_;
  std::string address_;
  std::shared_ptr<TestService::Stub> stub_;
};

TEST_P(GrpcTargetTest, UnaryWithMetadataBothWays) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  ctx.AddMetadata("echo-plain", "hello");
  const std::string bytes("\x00\x01\xff\n\r", 5);
  ctx.AddMetadata("echo-raw-bin", bytes);
  Request req;
  req.set_text("hi");
  req.set_payload(std::string(1000, 'x'));
  Response resp;
  ASSERT_TRUE(stub_->Echo(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.text(), "hi");
  EXPECT_EQ(resp.payload().size(), 1000u);
  auto find = [](const Metadata& md, const std::string& key) {
    auto it = md.find(key);
    return it == md.end() ? std::string("<missing>") : it->second;
  };
  EXPECT_EQ(find(ctx.GetServerInitialMetadata(), "initial-plain"), "hello");
  EXPECT_EQ(find(ctx.GetServerInitialMetadata(), "initial-raw-bin"), bytes);
  EXPECT_EQ(find(ctx.GetServerTrailingMetadata(), "trailing-plain"), "hello");
  EXPECT_EQ(find(ctx.GetServerTrailingMetadata(), "trailing-raw-bin"), bytes);
  if (GetParam() == Route::kAddressScheme) {
    EXPECT_EQ(ctx.transport(), address_);
  }
}

TEST_P(GrpcTargetTest, AsyncUnary) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Request req;
  req.set_text("async");
  Response resp;
  std::promise<absl::Status> done;
  stub_->async()->Echo(&ctx, &req, &resp, [&done](absl::Status s) { done.set_value(s); });
  EXPECT_TRUE(done.get_future().get().ok());
  EXPECT_EQ(resp.text(), "async");
}

TEST_P(GrpcTargetTest, ErrorCodeMessageAndDetails) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  const std::string details("\x08\x05\x12\x03why", 7);  // any bytes
  ctx.AddMetadata("details-bin", details);
  Request req;
  req.set_status_code(static_cast<int>(absl::StatusCode::kNotFound));
  req.set_status_message("no such thing");
  Response resp;
  absl::Status s = stub_->Echo(&ctx, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no such thing");
  auto it = ctx.GetServerTrailingMetadata().find("grpc-status-details-bin");
  ASSERT_NE(it, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(it->second, details);
}

TEST_P(GrpcTargetTest, ServerStreaming) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Request req;
  req.set_count(5);
  req.set_text("s");
  auto reader = stub_->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  while (reader->Read(&r)) EXPECT_EQ(r.index(), n++);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 5);
}

TEST_P(GrpcTargetTest, ClientStreaming) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Response resp;
  auto writer = stub_->ClientStream(&ctx, &resp);
  for (const char* t : {"a", "b", "c"}) {
    Request r;
    r.set_text(t);
    ASSERT_TRUE(writer->Write(r));
  }
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.text(), "abc");
  EXPECT_EQ(resp.index(), 3);
}

TEST_P(GrpcTargetTest, ClientStreamingWithNoRequests) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Response resp;
  auto writer = stub_->ClientStream(&ctx, &resp);
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.text(), "");
  EXPECT_EQ(resp.index(), 0);
}

// A bidi call whose server speaks first: the gateway must not wait for a
// request (or the half-close) before it starts the call.
TEST_P(GrpcTargetTest, BidiServerSpeaksFirst) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  ctx.AddMetadata("greet-first", "hello");
  auto stream = stub_->Bidi(&ctx);
  Response out;
  ASSERT_TRUE(stream->Read(&out));
  EXPECT_EQ(out.text(), "hello");
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&out));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_P(GrpcTargetTest, BidiPingPong) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  auto stream = stub_->Bidi(&ctx);
  for (int i = 0; i < 3; ++i) {
    Request r;
    r.set_text(absl::StrCat("m", i));
    ASSERT_TRUE(stream->Write(r));
    Response out;
    ASSERT_TRUE(stream->Read(&out));  // each reply before the next request
    EXPECT_EQ(out.text(), absl::StrCat("m", i));
    EXPECT_EQ(out.index(), i);
  }
  stream->WritesDone();
  Response extra;
  EXPECT_FALSE(stream->Read(&extra));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_P(GrpcTargetTest, BidiErrorFromServer) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  auto stream = stub_->Bidi(&ctx);
  Request r;
  r.set_status_code(static_cast<int>(absl::StatusCode::kAborted));
  r.set_status_message("stop");
  ASSERT_TRUE(stream->Write(r));
  Response out;
  EXPECT_FALSE(stream->Read(&out));
  absl::Status s = stream->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(s.message(), "stop");
}

TEST_P(GrpcTargetTest, DeadlineReachesTheServer) {
  ClientContext ctx;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  ctx.set_deadline(deadline);
  Request req;
  Response resp;
  ASSERT_TRUE(stub_->ReportDeadline(&ctx, req, &resp).ok());
  ASSERT_NE(resp.deadline_unix_micros(), 0);
  absl::Time seen = absl::FromUnixMicros(resp.deadline_unix_micros());
  EXPECT_LT(absl::AbsDuration(seen - deadline), absl::Seconds(5));
}

TEST_P(GrpcTargetTest, DeadlineExceeded) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(300));
  Request req;
  Response resp;
  EXPECT_EQ(stub_->WaitForCancel(&ctx, req, &resp).code(), absl::StatusCode::kDeadlineExceeded);
  // The server saw its call end at its deadline (polled: it may take a moment).
  std::string seen;
  for (int i = 0; i < 500 && (seen = LastCancel()) == "waiting"; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(seen, "deadline");
}

TEST_P(GrpcTargetTest, CancellationReachesTheServer) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));
  Request req;
  Response resp;
  absl::Status status;
  std::thread call([&] { status = stub_->WaitForCancel(&ctx, req, &resp); });
  for (int i = 0; i < 1000 && LastCancel() != "waiting"; ++i) absl::SleepFor(absl::Milliseconds(5));
  ctx.TryCancel();
  call.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  std::string seen;
  for (int i = 0; i < 500 && (seen = LastCancel()) == "waiting"; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(seen, "cancelled");
}

TEST_P(GrpcTargetTest, UnknownMethodIsUnimplemented) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  auto channel = CreateChannel(address_);
  ASSERT_TRUE(channel.ok());
  GenericStub generic(*channel);
  ByteBuffer request, response;
  absl::Status s = generic.UnaryCall(&ctx, "/ipcrpc.test.TestService/NoSuchMethod", request,
                                     &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
}

TEST_P(GrpcTargetTest, MetadataGrpcCannotCarryIsRefused) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  ctx.AddMetadata("echo-text", std::string("a\x01z", 3));  // not printable, not -bin
  Request req;
  Response resp;
  absl::Status s = stub_->Echo(&ctx, req, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("-bin"), absl::string_view::npos) << s;
}

// The gateway reads a response from gRPC only after its client took the
// previous one: 256 MiB streamed to a client that stops after the first
// message leave the gateway's memory far below that.
TEST_P(GrpcTargetTest, SlowReaderDoesNotMakeTheGatewayBuffer) {
  if (GetParam() != Route::kGateway) GTEST_SKIP() << "gateway only";
  const int64_t before = gateway_->RssBytes();
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(60));
  Request req;
  req.set_count(256);
  req.set_payload(std::string(1 << 20, 'p'));
  auto reader = stub_->ServerStream(&ctx, req);
  Response r;
  ASSERT_TRUE(reader->Read(&r));
  absl::SleepFor(absl::Seconds(1));  // the server keeps writing meanwhile
  const int64_t while_stalled = gateway_->RssBytes();
  int n = 1;
  while (reader->Read(&r)) ++n;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 256);
  EXPECT_LT(while_stalled - before, 64 << 20)
      << "gateway RSS grew from " << before << " to " << while_stalled;
}

INSTANTIATE_TEST_SUITE_P(Routes, GrpcTargetTest,
                         ::testing::Values(Route::kAddressScheme, Route::kGateway),
                         [](const ::testing::TestParamInfo<Route>& info) {
                           return info.param == Route::kAddressScheme ? "AddressScheme"
                                                                      : "Gateway";
                         });

TEST(GrpcAddressTest, MalformedAddressesAreRefused) {
  for (const char* bad : {"grpc:", "grpcs:", "grpc:host name:1"}) {
    auto channel = CreateChannel(bad);
    EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(GrpcAddressTest, NobodyListeningIsUnavailable) {
  // Port 1: privileged, nothing of ours listens there.
  auto channel = CreateChannel("grpc:127.0.0.1:1");
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Request req;
  Response resp;
  EXPECT_EQ(stub->Echo(&ctx, req, &resp).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ipcrpc::test

namespace ipcrpc::test {
namespace {

// grpcs: — TLS between an ipcrpc stub and ipcrpc_gateway --tls_cert/--tls_key
// (a certificate made for this test), with the roots from IPCRPC_GRPC_ROOT_CERTS.
class GrpcsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = dir_.File("cert.pem");
    key_ = dir_.File("key.pem");
    std::string command = absl::StrCat(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ", key_, " -out ", cert_,
        " 2>/dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0) << "openssl could not make a certificate";
    server_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        RunfilePath("tests/e2e/test_server"), "unix:" + dir_.File("s.sock")});
    ASSERT_TRUE(server_->Start()) << server_->output();
    gateway_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        RunfilePath("bridge/ipcrpc_gateway"), "--grpc_listen=127.0.0.1:0",
        "--to=unix:" + dir_.File("s.sock"), "--tls_cert=" + cert_, "--tls_key=" + key_});
    ASSERT_TRUE(gateway_->Start()) << gateway_->output();
    address_ = "grpcs:localhost:" + gateway_->Value("grpc_port");
  }
  void TearDown() override { unsetenv("IPCRPC_GRPC_ROOT_CERTS"); }

  absl::Status Echo(std::shared_ptr<Channel> channel) {
    auto stub = TestService::NewStub(channel);
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(10));
    Request req;
    req.set_text("over tls");
    Response resp;
    absl::Status s = stub->Echo(&ctx, req, &resp);
    if (s.ok() && resp.text() != "over tls") return absl::InternalError("wrong reply");
    return s;
  }

  testing::ScopedTempDir dir_;
  std::string cert_, key_, address_;
  std::unique_ptr<ChildProcess> server_, gateway_;
};

TEST_F(GrpcsTest, TrustedRootCertificateConnects) {
  setenv("IPCRPC_GRPC_ROOT_CERTS", cert_.c_str(), 1);
  auto channel = CreateChannel(address_);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_TRUE(Echo(*channel).ok());
}

TEST_F(GrpcsTest, UntrustedServerIsUnavailable) {
  unsetenv("IPCRPC_GRPC_ROOT_CERTS");  // the system's roots do not know this certificate
  auto channel = CreateChannel(address_);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Echo(*channel).code(), absl::StatusCode::kUnavailable);
}

TEST_F(GrpcsTest, UnreadableRootFileIsRefusedUpFront) {
  setenv("IPCRPC_GRPC_ROOT_CERTS", dir_.File("missing.pem").c_str(), 1);
  auto channel = CreateChannel(address_);
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kFailedPrecondition) << channel.status();
  EXPECT_NE(channel.status().message().find("IPCRPC_GRPC_ROOT_CERTS"), absl::string_view::npos);
}

}  // namespace
}  // namespace ipcrpc::test

namespace ipcrpc::test {
namespace {

int GatewayExitStatus(std::vector<std::string> flags) {
  flags.insert(flags.begin(), RunfilePath("bridge/ipcrpc_gateway"));
  ChildProcess gateway(flags);
  EXPECT_FALSE(gateway.Start()) << gateway.output();
  int status = gateway.Stop();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(GatewayFlagsTest, BadFlagsExitWithUsage) {
  EXPECT_EQ(GatewayExitStatus({}), 2);
  EXPECT_EQ(GatewayExitStatus({"--to=unix:/x"}), 2);
  EXPECT_EQ(GatewayExitStatus({"--grpc_listen=127.0.0.1:0", "--listen=unix:/x", "--to=unix:/y"}), 2);
  EXPECT_EQ(GatewayExitStatus({"--listen=unix:@gw", "--to=unix:/y"}), 2);  // must be grpc:
  EXPECT_EQ(GatewayExitStatus({"--grpc_listen=127.0.0.1:0", "--to=nope:/y"}), 2);
  EXPECT_EQ(GatewayExitStatus({"--grpc_listen=127.0.0.1:0", "--to=unix:/y", "--tls_cert=/x"}), 2);
  EXPECT_EQ(GatewayExitStatus({"--grpc_listen=127.0.0.1:0", "--to=unix:/y", "--bogus=1"}), 2);
}

TEST(GatewayFlagsTest, PortInUseExitsOne) {
  ChildProcess first({RunfilePath("bridge/ipcrpc_gateway"), "--grpc_listen=127.0.0.1:0",
                      "--to=unix:/nonexistent/s.sock"});
  ASSERT_TRUE(first.Start()) << first.output();
  EXPECT_EQ(GatewayExitStatus({"--grpc_listen=127.0.0.1:" + first.Value("grpc_port"),
                               "--to=unix:/nonexistent/s.sock"}),
            1);
}

TEST(GatewayFlagsTest, LocalServerMissingMakesCallsUnavailable) {
  ChildProcess gateway({RunfilePath("bridge/ipcrpc_gateway"), "--grpc_listen=127.0.0.1:0",
                        "--to=unix:/nonexistent/s.sock"});
  ASSERT_TRUE(gateway.Start()) << gateway.output();
  auto channel = CreateChannel("grpc:127.0.0.1:" + gateway.Value("grpc_port"));
  ASSERT_TRUE(channel.ok());
  GenericStub stub(*channel);
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  ByteBuffer request, response;
  absl::Status s = stub.UnaryCall(&ctx, "/ipcrpc.test.TestService/Echo", request, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("/nonexistent/s.sock"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace ipcrpc::test

namespace ipcrpc::test {
namespace {

// More concurrent calls through the gateway (--listen) than the default
// streaming share of one connection (8): every forwarded call is a generic
// handler, and all of them finish OK.
TEST(GatewayConcurrencyTest, ManyConcurrentCallsOnOneConnection) {
  ChildProcess grpc_server({RunfilePath("tests/bridge/plain_grpc_server")});
  ASSERT_TRUE(grpc_server.Start()) << grpc_server.output();
  testing::ScopedTempDir dir;
  const std::string address = "unix:" + dir.File("gw.sock");
  ChildProcess gateway({RunfilePath("bridge/ipcrpc_gateway"), "--listen=" + address,
                        "--to=grpc:127.0.0.1:" + grpc_server.Value("GRPC_PORT"),
                        "--threads=32"});
  ASSERT_TRUE(gateway.Start()) << gateway.output();
  auto channel = CreateChannel(address);
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  constexpr int kCalls = 24;
  std::vector<absl::Status> statuses(kCalls);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      ClientContext ctx;
      ctx.set_timeout(absl::Seconds(30));
      Request req;
      req.set_delay_ms(200);  // all of them in flight at once
      Response resp;
      statuses[i] = stub->Echo(&ctx, req, &resp);
    });
  }
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCalls; ++i) EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i];
}

}  // namespace
}  // namespace ipcrpc::test
