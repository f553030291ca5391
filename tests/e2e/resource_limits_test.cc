// Server resource limits in real processes (issue 9, "bounded resources per
// peer"): what happens when the system refuses the server a thread. The
// server (test_server) runs as uid 65534 under a small RLIMIT_NPROC, which
// needs root to set up; skipped otherwise. No assertion depends on timing.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

absl::Status Echo(TestService::Stub& stub) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Request request;
  request.set_text("hi");
  Response response;
  return stub.Echo(&ctx, request, &response);
}

// The server process has not exited (WNOWAIT: it stays ServerProcess's to reap).
bool Alive(const ServerProcess& server) {
  if (server.pid() <= 0) return false;
  siginfo_t info = {};
  if (::waitid(P_PID, server.pid(), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

// Before: every new connection started a std::thread unguarded; the kernel's
// refusal (EAGAIN) became std::system_error and std::terminate, so the fifth
// connection here killed the server. After: that connection is refused with
// RESOURCE_EXHAUSTED and the server serves again once connections close.
TEST(ResourceLimitsTest, AServerOutOfThreadsRefusesConnectionsAndKeepsServing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the server as another user";
  ServerProcess server({"--nproc_headroom=4"}, "server { allowed_uids: 0 }");
  std::vector<std::unique_ptr<TestService::Stub>> held;
  int served = 0;
  int refused = 0;
  for (int i = 0; i < 40 && Alive(server); ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    auto stub = TestService::NewStub(*channel);
    absl::Status s = Echo(*stub);
    if (s.ok()) {
      ++served;
    } else {
      EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
      EXPECT_NE(s.message().find("thread"), absl::string_view::npos) << s;
      ++refused;
    }
    held.push_back(std::move(stub));  // keeps its connection (and thread) open
  }
  ASSERT_TRUE(Alive(server)) << "the server died when it ran out of threads (served " << served
                             << ", refused " << refused << ")";
  EXPECT_GT(served, 0);
  EXPECT_GT(refused, 0) << "the thread limit was never reached";
  std::fprintf(stderr, "served %d connections, refused %d\n", served, refused);

  // Load drops: the server serves a new client again.
  held.clear();
  absl::Status last;
  for (int attempt = 0; attempt < 300; ++attempt) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    last = Echo(*TestService::NewStub(*channel));
    if (last.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(last.ok()) << "no call served after the connections closed: " << last;
  EXPECT_TRUE(Alive(server));
}

}  // namespace
}  // namespace ipcrpc::test
