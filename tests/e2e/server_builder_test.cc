// Server set-up errors and overload, in one process over socketpairs and
// unix sockets.

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/notification.h"
#include "tests/testing/temp_dir.h"
#include "transports/unix_socket.h"

namespace ipcrpc::test {
namespace {

// Echo blocks until released, so calls pile up.
class GatedService final : public TestService::Service {
 public:
  absl::Status Echo(ServerContext* ctx, const Request* request, Response* response) override {
    release_.WaitForNotificationWithTimeout(absl::Seconds(10));
    response->set_text(request->text());
    return absl::OkStatus();
  }
  void Release() { release_.Notify(); }

 private:
  testing::Notification release_;
};

TEST(ServerBuilderTest, NothingToServe) {
  ServerBuilder builder;
  auto server = builder.BuildAndStart();
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
}

TEST(ServerBuilderTest, DuplicateServiceName) {
  testing::ScopedTempDir dir;
  TestService::Service a, b;
  ServerBuilder builder;
  builder.AddListeningAddress("unix:" + dir.File("s.sock")).RegisterService(&a).RegisterService(&b);
  auto server = builder.BuildAndStart();
  EXPECT_EQ(server.status().code(), absl::StatusCode::kAlreadyExists) << server.status();
}

TEST(ServerBuilderTest, AnUnknownCompressionInTheConfigIsInvalidArgument) {
  testing::ScopedTempDir dir;
  TestService::Service service;
  config::ServerConfig config;
  config.set_compression("zip");
  ServerBuilder builder;
  builder.AddListeningAddress("unix:" + dir.File("s.sock")).RegisterService(&service).SetConfig(
      config);
  auto server = builder.BuildAndStart();
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
  EXPECT_NE(server.status().message().find("unknown compression algorithm \"zip\""),
            std::string::npos)
      << server.status();
}

class NullGeneric final : public GenericService {
  absl::Status HandleCall(ServerContext*, GenericServerReaderWriter*) override {
    return absl::OkStatus();
  }
};

TEST(ServerBuilderTest, AtMostOneGenericService) {
  testing::ScopedTempDir dir;
  NullGeneric a, b;
  ServerBuilder two;
  two.AddListeningAddress("unix:" + dir.File("s.sock"))
      .RegisterGenericService(&a)
      .RegisterGenericService(&b);
  EXPECT_EQ(two.BuildAndStart().status().code(), absl::StatusCode::kAlreadyExists);
  ServerBuilder null;
  null.AddListeningAddress("unix:" + dir.File("t.sock")).RegisterGenericService(nullptr);
  EXPECT_EQ(null.BuildAndStart().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServerBuilderTest, HealthServiceIsOwnedAndEnabledByOneLine) {
  testing::ScopedTempDir dir;
  TestService::Service service;
  ServerBuilder plain;
  plain.AddListeningAddress("unix:" + dir.File("p.sock")).RegisterService(&service);
  auto without = plain.BuildAndStart();
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ((*without)->health_service(), nullptr);

  ServerBuilder builder;
  builder.AddListeningAddress("unix:" + dir.File("h.sock"))
      .RegisterService(&service)
      .EnableHealthService();
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok()) << server.status();
  HealthService* health = (*server)->health_service();
  ASSERT_NE(health, nullptr);
  using Status = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(health->GetServingStatus(""), Status::SERVING);
  EXPECT_EQ(health->GetServingStatus("ipcrpc.test.TestService"), Status::SERVING);
  EXPECT_EQ(health->GetServingStatus("no.Such"), Status::SERVICE_UNKNOWN);
  health->SetServingStatus("extra.Service", false);
  EXPECT_EQ(health->GetServingStatus("extra.Service"), Status::NOT_SERVING);
  health->SetServingStatus(false);
  EXPECT_EQ(health->GetServingStatus(""), Status::NOT_SERVING);
  health->SetServingStatus(true);
  EXPECT_EQ(health->GetServingStatus(""), Status::SERVING);
  health->Shutdown();  // NOT_SERVING for good
  EXPECT_EQ(health->GetServingStatus(""), Status::NOT_SERVING);
  health->SetServingStatus("", true);
  EXPECT_EQ(health->GetServingStatus(""), Status::NOT_SERVING);
}

TEST(ServerBuilderTest, BadAndBusyAddresses) {
  testing::ScopedTempDir dir;
  TestService::Service service;
  ServerBuilder bad;
  bad.AddListeningAddress("tcp:127.0.0.1:1").RegisterService(&service);
  EXPECT_EQ(bad.BuildAndStart().status().code(), absl::StatusCode::kInvalidArgument);

  std::string address = "unix:" + dir.File("busy.sock");
  ServerBuilder first;
  first.AddListeningAddress(address).RegisterService(&service);
  auto running = first.BuildAndStart();
  ASSERT_TRUE(running.ok()) << running.status();
  TestService::Service other;
  ServerBuilder second;
  second.AddListeningAddress(address).RegisterService(&other);
  auto refused = second.BuildAndStart();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists) << refused.status();
}

TEST(ServerOverloadTest, FullHandlerQueueIsResourceExhausted) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  GatedService service;
  ServerOptions options;
  options.num_threads = 1;
  options.max_queued_calls = 1;
  ServerBuilder builder;
  builder.RegisterService(&service).SetOptions(options).AddTransport(std::move(pair->second));
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok());
  auto stub = TestService::NewStub(CreateChannelFromTransport(std::move(pair->first)));

  // One call runs, one waits in the queue, the rest are refused.
  constexpr int kCalls = 5;
  std::vector<absl::Status> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      ClientContext ctx;
      Response resp;
      results[i] = stub->Echo(&ctx, Request(), &resp);
    });
  }
  absl::SleepFor(absl::Milliseconds(200));
  service.Release();
  for (auto& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) ++ok;
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      ++exhausted;
      EXPECT_NE(s.message().find("overloaded"), std::string::npos) << s;
    }
  }
  EXPECT_EQ(ok + exhausted, kCalls);
  EXPECT_GE(ok, 1);
  EXPECT_GE(exhausted, 1);
}

TEST(ServerOverloadTest, TooManyStreamsOnOneConnection) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  GatedService service;
  ServerOptions options;
  options.max_concurrent_streams_per_connection = 2;
  ServerBuilder builder;
  builder.RegisterService(&service).SetOptions(options).AddTransport(std::move(pair->second));
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok());
  auto stub = TestService::NewStub(CreateChannelFromTransport(std::move(pair->first)));
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      ClientContext ctx;
      Response resp;
      results[i] = stub->Echo(&ctx, Request(), &resp);
    });
  }
  absl::SleepFor(absl::Milliseconds(200));
  service.Release();
  for (auto& t : threads) t.join();
  int exhausted = 0;
  for (const absl::Status& s : results) {
    if (s.code() == absl::StatusCode::kResourceExhausted) ++exhausted;
  }
  EXPECT_EQ(exhausted, 2);
}

// A unary handler that blocks until another call on the same connection
// arrives: the connection must keep being read while it runs (the server's
// watchdog hands the reading role to a standby thread).
class RendezvousService final : public TestService::Service {
 public:
  absl::Status Echo(ServerContext* ctx, const Request* request, Response* response) override {
    if (request->text() == "wait") {
      if (!released_.WaitForNotificationWithTimeout(absl::Seconds(10))) {
        return absl::DeadlineExceededError("never released");
      }
    } else {
      released_.Notify();
    }
    response->set_text(request->text());
    return absl::OkStatus();
  }

 private:
  testing::Notification released_;
};

TEST(InlineHandlerTest, ABlockedUnaryHandlerDoesNotStopItsConnection) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  RendezvousService service;
  ServerBuilder builder;
  builder.RegisterService(&service).AddTransport(std::move(pair->second));
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok());
  auto stub = TestService::NewStub(CreateChannelFromTransport(std::move(pair->first)));
  absl::Status waited;
  std::thread waiter([&] {
    ClientContext ctx;
    ctx.set_timeout(absl::Seconds(20));
    Request req;
    req.set_text("wait");
    Response resp;
    waited = stub->Echo(&ctx, req, &resp);
  });
  absl::SleepFor(absl::Milliseconds(20));
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));
  Request req;
  req.set_text("release");
  Response resp;
  EXPECT_TRUE(stub->Echo(&ctx, req, &resp).ok());
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited;
}

// GetStats counts what the limits refuse and close (the limits themselves
// are tested against separate processes in resource_limits_test).
TEST(ServerBuilderTest, StatsCountRefusedAndClosedConnectionsAndExhaustedCalls) {
  testing::ScopedTempDir dir;
  const std::string address = "unix:" + dir.File("s.sock");
  TestService::Service service;  // every method UNIMPLEMENTED: no handler work
  ServerOptions options;
  options.max_connections = 1;
  options.idle_timeout = absl::Milliseconds(50);
  options.max_metadata_entries = 2;
  ServerBuilder builder;
  builder.AddListeningAddress(address).RegisterService(&service).SetOptions(options);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->GetStats().connections_accepted, 0u);

  auto first = CreateChannel(address);
  ASSERT_TRUE(first.ok()) << first.status();
  auto stub = TestService::NewStub(*first);
  Request request;
  Response response;
  ClientContext too_much_metadata;
  for (int i = 0; i < 3; ++i) too_much_metadata.AddMetadata("k" + std::to_string(i), "v");
  absl::Status s = stub->Echo(&too_much_metadata, request, &response);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  ServerStats stats = (*server)->GetStats();
  EXPECT_EQ(stats.connections_accepted, 1u);
  EXPECT_EQ(stats.live_connections, 1u);
  EXPECT_EQ(stats.calls_resource_exhausted, 1u);

  // A second connection while the first is open: over max_connections.
  auto second = CreateChannel(address);
  ASSERT_TRUE(second.ok()) << second.status();
  ClientContext ctx;
  s = TestService::NewStub(*second)->Echo(&ctx, request, &response);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_EQ((*server)->GetStats().connections_refused_limit, 1u);

  // The first goes idle and is closed.
  for (int i = 0; i < 200 && (*server)->GetStats().connections_closed_idle == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  stats = (*server)->GetStats();
  EXPECT_EQ(stats.connections_closed_idle, 1u);
  EXPECT_EQ(stats.connections_refused_no_thread, 0u);
  EXPECT_EQ(stats.peers_refused, 0u);
}

}  // namespace
}  // namespace ipcrpc::test
