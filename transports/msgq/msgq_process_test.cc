// Tests of the msgq transport with the peer in a forked child: a peer killed
// mid-read or while a write waits for room is UNAVAILABLE, and its queues are
// removed.

#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/msgq/msgq.h"
#include "transports/msgq/msgq_test_util.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::msgq_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// msgq_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

// Forks a child that attaches to `offer` over `control.client` and then
// either echoes what it reads or (echo = false) reads nothing. The child
// never returns into the test and never runs destructors.
pid_t ForkClient(const wire::TransportOffer& offer, ControlPair& control, bool echo) {
  pid_t pid = ::fork();
  if (pid != 0) {
    control.client.reset();
    return pid;
  }
  ::close(control.server.release());
  auto t = AttachMsgq(offer, {}, std::move(control.client), {});
  if (!t.ok()) ::_exit(2);
  if (!echo) {
    for (;;) ::pause();
  }
  char buf[4096];
  for (;;) {
    auto r = (*t)->Read(absl::MakeSpan(buf, sizeof(buf)), absl::InfiniteFuture());
    if (!r.ok()) ::_exit(0);
    absl::string_view chunks[] = {absl::string_view(buf, *r)};
    if (!(*t)->Write(chunks, absl::InfiniteFuture()).ok()) ::_exit(0);
  }
}

struct ChildServer {
  pid_t pid = -1;
  std::unique_ptr<Transport> server;
  wire::MsgqParams params;
};

ChildServer StartChild(bool echo) {
  ChildServer child;
  ControlPair control = MakeControlPair();
  auto pending = PrepareMsgq({});
  EXPECT_TRUE(pending.ok()) << pending.status();
  if (!pending.ok()) return child;
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  child.params = offer.msgq();
  child.pid = ForkClient(offer, control, echo);
  EXPECT_GT(child.pid, 0);
  auto server = (*pending)->Complete(std::move(control.server), absl::Now() + kPatience);
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) child.server = std::move(*server);
  return child;
}

TEST(MsgqProcessTest, PeerKilledMidReadIsUnavailableAndTheQueuesAreRemoved) {
  ChildServer child = StartChild(/*echo=*/true);
  ASSERT_NE(child.server, nullptr);
  ASSERT_TRUE(WriteAll(*child.server, "ping").ok());
  auto echoed = ReadExactly(*child.server, 4);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "ping");

  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    killed_at = absl::Now();
    ::kill(child.pid, SIGKILL);
  });
  char buf[8];
  auto r = child.server->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  absl::Time returned_at = absl::Now();
  killer.join();
  int wstatus = 0;
  ::waitpid(child.pid, &wstatus, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(returned_at - killed_at, absl::Seconds(5));
  std::cout << "[ info ] Read returned " << (returned_at - killed_at)
            << " after SIGKILL of the peer\n";
  // Whoever is still alive removes the queues, before this side closes.
  EXPECT_TRUE(QueueGoneWithin(child.params.client_to_server_id(), absl::Seconds(5)));
  EXPECT_TRUE(QueueGoneWithin(child.params.server_to_client_id(), absl::Seconds(5)));
  EXPECT_EQ(WriteAll(*child.server, "x").code(), absl::StatusCode::kUnavailable);
}

TEST(MsgqProcessTest, PeerKilledWhileAWriteWaitsForRoomIsUnavailable) {
  ChildServer child = StartChild(/*echo=*/false);
  ASSERT_NE(child.server, nullptr);
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    ::kill(child.pid, SIGKILL);
  });
  absl::Time start = absl::Now();
  absl::Status s = WriteAll(*child.server, Pattern(1 << 20), absl::InfiniteFuture());
  killer.join();
  int wstatus = 0;
  ::waitpid(child.pid, &wstatus, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(QueueGoneWithin(child.params.client_to_server_id(), absl::Seconds(5)));
  EXPECT_TRUE(QueueGoneWithin(child.params.server_to_client_id(), absl::Seconds(5)));
}

}  // namespace
}  // namespace ipcrpc::msgq_test
