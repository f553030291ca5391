// Transport negotiation end to end, with a test transport ("test-pair": the
// server offers one end of a fresh socketpair) so that the mechanics are
// tested independently of the real upgradeable transports.

#include "connect/negotiation.h"

#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "examples/greeter/greeter.ipcrpc.pb.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/testing/temp_dir.h"

namespace ipcrpc {
namespace {

class PairPending final : public PendingTransport {
 public:
  explicit PairPending(bool fail_complete) : fail_complete_(fail_complete) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mine_.reset(sv[0]);
    theirs_.reset(sv[1]);
  }
  void FillOffer(wire::TransportOffer* offer, std::vector<int>* fds) override {
    offer->set_transport("test-pair");
    fds->push_back(theirs_.get());
  }
  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control, absl::Time) override {
    if (fail_complete_) return absl::InternalError("complete failed on purpose");
    auto t = UnixSocketTransport::Create(std::move(mine_), "test-pair:server");
    if (!t.ok()) return t.status();
    return std::unique_ptr<Transport>(std::move(*t));
  }

 private:
  bool fail_complete_;
  ScopedFd mine_, theirs_;
};

UpgradeableTransport TestPair(bool fail_prepare = false, bool fail_attach = false) {
  UpgradeableTransport t;
  t.name = "test-pair";
  t.prepare = [=](const wire::TransportRequest&, CreatedObjects*)
      -> absl::StatusOr<std::unique_ptr<PendingTransport>> {
    if (fail_prepare) return absl::ResourceExhaustedError("prepare failed on purpose");
    return std::unique_ptr<PendingTransport>(std::make_unique<PairPending>(false));
  };
  t.attach = [=](const wire::TransportOffer& offer, std::vector<ScopedFd> fds,
                 ScopedFd control) -> absl::StatusOr<std::unique_ptr<Transport>> {
    if (fail_attach) return absl::PermissionDeniedError("attach failed on purpose");
    if (fds.size() != 1) return absl::InvalidArgumentError("expected one fd");
    auto tr = UnixSocketTransport::Create(std::move(fds[0]), "test-pair:client");
    if (!tr.ok()) return tr.status();
    return std::unique_ptr<Transport>(std::move(*tr));
  };
  return t;
}

class Greeter final : public demo::Greeter::Service {
  absl::Status SayHello(ServerContext* ctx, const demo::HelloRequest* req,
                        demo::HelloReply* reply) override {
    reply->set_message(absl::StrCat("hi ", req->name(), " from ", ctx->peer().pid));
    return absl::OkStatus();
  }
};

class NegotiationTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<UpgradeableTransport> allowed, bool allow_unix = true) {
    address_ = "unix:" + dir_.File("s.sock");
    auto listener = UnixSocketListener::Listen(address_);
    ASSERT_TRUE(listener.ok()) << listener.status();
    ServerBuilder builder;
    builder.RegisterService(&service_).AddListener(std::make_unique<NegotiatingListener>(
        std::move(*listener), std::move(allowed), allow_unix));
    auto server = builder.BuildAndStart();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  absl::StatusOr<std::string> Call(std::vector<std::string> preference,
                                   std::vector<UpgradeableTransport> available,
                                   std::string* description = nullptr) {
    auto connector = UnixSocketConnector::Create(address_);
    if (!connector.ok()) return connector.status();
    auto negotiating = std::make_unique<NegotiatingConnector>(
        "test:" + address_, std::move(*connector), std::move(preference), std::move(available));
    auto transport = negotiating->Connect(absl::Now() + absl::Seconds(5));
    if (!transport.ok()) return transport.status();
    if (description) *description = (*transport)->description();
    auto stub = demo::Greeter::NewStub(CreateChannelFromTransport(std::move(*transport)));
    ClientContext ctx;
    demo::HelloRequest req;
    req.set_name("n");
    demo::HelloReply reply;
    absl::Status s = stub->SayHello(&ctx, req, &reply);
    if (!s.ok()) return s;
    EXPECT_EQ(ctx.peer().pid, ::getpid());
    return reply.message();
  }

  testing::ScopedTempDir dir_;
  std::string address_;
  Greeter service_;
  std::unique_ptr<Server> server_;
};

TEST_F(NegotiationTest, PlainClientStaysOnTheSocket) {
  StartServer({TestPair()});
  std::string description;
  auto r = Call({"unix"}, {}, &description);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, absl::StrCat("hi n from ", ::getpid()));
  EXPECT_EQ(description, address_);
}

TEST_F(NegotiationTest, UpgradesToTheRequestedTransport) {
  StartServer({TestPair()});
  std::string description;
  auto r = Call({"test-pair"}, {TestPair()}, &description);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(description, "test-pair via test:" + address_);
}

TEST_F(NegotiationTest, FallsBackInPreferenceOrder) {
  StartServer({});  // only unix allowed
  std::string description;
  auto r = Call({"test-pair", "unix"}, {TestPair()}, &description);
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(NegotiationTest, RefusalNamesWhatTheServerAllows) {
  StartServer({}, /*allow_unix=*/false);
  auto r = Call({"test-pair"}, {TestPair()});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("[test-pair]"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("allows []"), std::string::npos) << r.status();
}

TEST_F(NegotiationTest, ServerSetupFailureReachesTheClient) {
  StartServer({TestPair(/*fail_prepare=*/true)});
  auto r = Call({"test-pair"}, {TestPair()});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("prepare failed on purpose"), std::string::npos)
      << r.status();
}

TEST_F(NegotiationTest, ClientAttachFailureIsReportedAndTheServerCopes) {
  StartServer({TestPair()});
  auto r = Call({"test-pair"}, {TestPair(false, /*fail_attach=*/true)});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_NE(r.status().message().find("attach failed on purpose"), std::string::npos);
  // The server is still fine.
  auto ok = Call({"test-pair"}, {TestPair()});
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(NegotiationTest, GarbageRequestClosesTheConnection) {
  StartServer({TestPair()});
  auto connector = UnixSocketConnector::Create(address_);
  ASSERT_TRUE(connector.ok());
  auto socket = (*connector)->ConnectSocket(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(socket.ok());
  std::string bad(16, '\0');
  bad[0] = 0x49; bad[1] = 0x52; bad[2] = 1; bad[3] = 11;  // TRANSPORT_REQUEST
  bad[8] = 3;                                             // 3-byte payload
  bad += "\xff\xff\xff";                                  // not a protobuf
  absl::string_view chunks[] = {bad};
  ASSERT_TRUE((*socket)->Write(chunks, absl::Now() + absl::Seconds(5)).ok());
  char c;
  auto read = (*socket)->Read(absl::MakeSpan(&c, 1), absl::Now() + absl::Seconds(5));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
}

}  // namespace
}  // namespace ipcrpc
