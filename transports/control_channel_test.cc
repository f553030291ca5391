// Tests for transports/control_channel.h: the liveness rule (hang-up and
// stray bytes end the channel, once, whoever asks), poll-mode readiness, the
// watcher (prompt, a timer, keeps watching after Shutdown) and a watcher
// thread that cannot start (injected, and for real under RLIMIT_NPROC).

#include "transports/control_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/notification.h"

namespace ipcrpc {
namespace {

constexpr absl::Duration kPromptly = absl::Milliseconds(500);

struct Sockets {
  ScopedFd ours;
  ScopedFd peer;
};

Sockets MakeSockets() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {ScopedFd(sv[0]), ScopedFd(sv[1])};
}

std::unique_ptr<ControlChannel> OpenChannel(ScopedFd socket) {
  auto channel = ControlChannel::Open(std::move(socket), "test:channel");
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? std::move(*channel) : nullptr;
}

using Event = ::ipcrpc::testing::Notification;

TEST(ControlChannelTest, ReadsThePeersCredentialsOnce) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  EXPECT_EQ(channel->peer().pid, ::getpid());
  EXPECT_EQ(channel->peer().uid, ::geteuid());
  EXPECT_TRUE(channel->status().ok());
  EXPECT_FALSE(channel->peer_lost());
  EXPECT_EQ(channel->PeerClosedStatus().message(), "test:channel: peer closed the connection");
  EXPECT_FALSE(channel->peer_lost());  // it records nothing
}

TEST(ControlChannelTest, WhatIsNotAConnectedUnixSocketIsRefusedNamingTheTransport) {
  auto missing = ControlChannel::Open(ScopedFd(), "fifo:/tmp/x (client)");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(missing.status().message(), "fifo:/tmp/x (client): "))
      << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "control socket"));
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ScopedFd write_end(p[1]);
  auto pipe = ControlChannel::Open(ScopedFd(p[0]), "msgq:c2s=1,s2c=2 (client)");
  EXPECT_EQ(pipe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(pipe.status().message(), "msgq:c2s=1,s2c=2 (client): the control socket: "))
      << pipe.status();
  EXPECT_TRUE(absl::StrContains(pipe.status().message(), "not a connected unix socket"));
}

TEST(ControlChannelTest, PeerCloseIsReportedOnceWhileManyThreadsAsk) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  std::atomic<int> reports{0};
  channel->set_on_peer_lost([&] { reports.fetch_add(1); });
  EXPECT_TRUE(channel->CheckNow().ok());

  std::atomic<bool> go{false};
  std::vector<std::thread> askers;
  std::vector<absl::Status> seen(8);
  for (int i = 0; i < 8; ++i) {
    askers.emplace_back([&, i] {
      while (!go.load()) {
      }
      absl::Status last;
      for (int round = 0; round < 200; ++round) {
        last = i % 2 ? channel->CheckNow() : channel->OnPollEvents(POLLIN | POLLRDHUP);
      }
      seen[i] = last;
    });
  }
  s.peer.reset();
  go.store(true);
  for (auto& t : askers) t.join();
  EXPECT_EQ(reports.load(), 1);
  for (const absl::Status& status : seen) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_EQ(status.message(), "test:channel: peer closed the connection");
  }
  EXPECT_TRUE(channel->peer_lost());
  channel->MarkPeerClosed();
  EXPECT_EQ(channel->status().message(), "test:channel: peer closed the connection");
  EXPECT_EQ(reports.load(), 1);
}

TEST(ControlChannelTest, AStrayByteEndsTheChannelAndStaysInTheSocket) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  int reports = 0;
  channel->set_on_peer_lost([&] { ++reports; });
  ASSERT_EQ(::write(s.peer.get(), "!", 1), 1);
  absl::Status status = channel->CheckNow();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "must stay silent")) << status;
  EXPECT_EQ(reports, 1);
  char byte = 0;
  EXPECT_EQ(::recv(channel->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT), 1);  // peeked, not read
  // The first reason sticks: a later close does not rewrite it.
  s.peer.reset();
  EXPECT_EQ(channel->CheckNow(), status);
  EXPECT_EQ(reports, 1);
}

TEST(ControlChannelTest, PollModeReadinessAndTheShutdownDoorbell) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  pollfd fds[2] = {{channel->fd(), ControlChannel::kPollEvents, 0},
                   {channel->doorbell_fd(), POLLIN, 0}};
  EXPECT_EQ(::poll(fds, 2, 0), 0);  // a silent, live peer: nothing to wake for
  // A readiness report with nothing behind it changes nothing.
  EXPECT_TRUE(channel->OnPollEvents(POLLIN).ok());
  EXPECT_TRUE(channel->OnPollEvents(0).ok());

  channel->Shutdown();
  EXPECT_TRUE(channel->is_shut_down());
  ASSERT_EQ(::poll(fds, 2, 0), 1);  // our doorbell, not our socket
  EXPECT_NE(fds[1].revents & POLLIN, 0);
  EXPECT_TRUE(channel->OnPollEvents(fds[0].revents).ok());
  // The peer sees end-of-file.
  char byte;
  EXPECT_EQ(::recv(s.peer.get(), &byte, 1, MSG_DONTWAIT), 0);
  // And we still see the peer's own close.
  s.peer.reset();
  ASSERT_EQ(::poll(fds, 1, 1000), 1);
  absl::Status status = channel->OnPollEvents(fds[0].revents);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "peer closed")) << status;
}

TEST(ControlChannelTest, TheWatcherReportsPeerLossPromptlyAndOnce) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  std::atomic<int> reports{0};
  Event lost;
  ControlChannel::WatchHooks hooks;
  hooks.on_peer_lost = [&] {
    reports.fetch_add(1);
    lost.Notify();
  };
  ASSERT_TRUE(channel->StartWatcher(std::move(hooks)).ok());
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(channel->peer_lost());
  absl::Time closed_at = absl::Now();
  s.peer.reset();
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - closed_at, kPromptly);
  EXPECT_FALSE(channel->CheckNow().ok());
  channel->StopWatcher();
  EXPECT_EQ(reports.load(), 1);
}

TEST(ControlChannelTest, TheWatcherSeesAStrayByte) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  Event lost;
  ControlChannel::WatchHooks hooks;
  hooks.on_peer_lost = [&] { lost.Notify(); };
  ASSERT_TRUE(channel->StartWatcher(std::move(hooks)).ok());
  ASSERT_EQ(::write(s.peer.get(), "?", 1), 1);
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::StrContains(channel->status().message(), "must stay silent"))
      << channel->status();
}

TEST(ControlChannelTest, TheWatcherKeepsWatchingAfterShutdownAndRunsTheTimer) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  Event lost;
  Event timer_fired;
  const absl::Time fire_at = absl::Now() + absl::Milliseconds(30);
  ControlChannel::WatchHooks hooks;
  hooks.on_peer_lost = [&] { lost.Notify(); };
  hooks.next_timer = [&] { return fire_at; };
  // Also called after a Kick or the Shutdown doorbell: it looks at the clock.
  hooks.on_timer = [&](absl::Time now) {
    if (now >= fire_at) timer_fired.Notify();
  };
  ASSERT_TRUE(channel->StartWatcher(std::move(hooks)).ok());
  channel->Shutdown();
  channel->Kick();
  ASSERT_TRUE(timer_fired.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_FALSE(channel->peer_lost());  // our own shut-down is not the peer's loss
  s.peer.reset();
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST(ControlChannelTest, AWatcherThatCannotStartIsResourceExhausted) {
  Sockets s = MakeSockets();
  auto channel = OpenChannel(std::move(s.ours));
  ASSERT_NE(channel, nullptr);
  bool hook_ran = false;
  ControlChannel::WatchHooks hooks;
  hooks.on_peer_lost = [&] { hook_ran = true; };
  auto no_threads = [](std::function<void()>) -> absl::StatusOr<std::thread> {
    return absl::ResourceExhaustedError("Resource temporarily unavailable");
  };
  absl::Status status = channel->StartWatcher(std::move(hooks), no_threads);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(status.message(),
            "test:channel: cannot start the watcher thread: Resource temporarily unavailable");
  channel->StopWatcher();  // nothing to stop
  s.peer.reset();
  EXPECT_FALSE(channel->CheckNow().ok());  // poll mode still works
  EXPECT_TRUE(hook_ran);
}

// The real thing: std::thread throws std::system_error when clone() fails
// with EAGAIN, which RLIMIT_NPROC = 0 causes for a non-root user. Run in a
// child (tests run as root; setresuid drops that for good). Skipped where
// uid 65534 is not available (Bazel's sandbox maps only uid 0; run the
// binary directly to see it run).
TEST(ControlChannelTest, AWatcherThatCannotStartUnderRlimitNprocIsResourceExhausted) {
  Sockets s = MakeSockets();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    s.peer.reset();
    if (::geteuid() != 0) ::_exit(77);
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(77);
    }
    rlimit none = {0, 0};
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(3);
    auto channel = ControlChannel::Open(std::move(s.ours), "shm:client");
    if (!channel.ok()) ::_exit(4);
    absl::Status status = (*channel)->StartWatcher({});
    if (status.ok()) ::_exit(5);
    if (status.code() != absl::StatusCode::kResourceExhausted) ::_exit(6);
    if (!absl::StrContains(status.message(), "shm:client: cannot start the watcher thread: ")) {
      ::_exit(7);
    }
    ::_exit(0);
  }
  s.ours.reset();
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << wstatus;
  if (WEXITSTATUS(wstatus) == 77) GTEST_SKIP() << "cannot become uid 65534 here";
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "see the _exit codes in the child";
}

}  // namespace
}  // namespace ipcrpc

namespace ipcrpc {
namespace {

// Two channels on one socketpair, as the two ends of an upgraded connection.
struct ChannelPair {
  std::unique_ptr<ControlChannel> a;
  std::unique_ptr<ControlChannel> b;
};
ChannelPair MakeChannelPair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto a = ControlChannel::Open(ScopedFd(sv[0]), "test:a");
  auto b = ControlChannel::Open(ScopedFd(sv[1]), "test:b");
  EXPECT_TRUE(a.ok() && b.ok());
  return {std::move(*a), std::move(*b)};
}

TEST(ControlChannelFdTest, RecordsArriveInOrderAndAWaitingRecordIsNotStrayBytes) {
  ChannelPair p = MakeChannelPair();
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ScopedFd r(pipe_fds[0]), w(pipe_fds[1]);
  int first[] = {r.get(), w.get()};
  int second[] = {w.get()};
  ASSERT_TRUE(p.a->SendFds(first, absl::InfiniteFuture()).ok());
  ASSERT_TRUE(p.a->SendFds(second, absl::InfiniteFuture()).ok());
  // The check sees a record waiting, not a violation, and stops polling
  // for input until it is taken.
  EXPECT_TRUE(p.b->CheckNow().ok());
  EXPECT_EQ(p.b->poll_events(), POLLRDHUP);
  auto one = p.b->TakeFdBatch();
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->fds.size(), 2u);
  EXPECT_EQ(p.b->poll_events(), ControlChannel::kPollEvents);
  auto two = p.b->TakeFdBatch();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->fds.size(), 1u);
  EXPECT_EQ(p.b->TakeFdBatch().status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(p.b->status().ok());
}

TEST(ControlChannelFdTest, BytesThatAreNotARecordStillEndTheChannel) {
  ChannelPair p = MakeChannelPair();
  ASSERT_EQ(::send(p.a->fd(), "IRxx", 4, 0), 4);
  EXPECT_EQ(p.b->CheckNow().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(p.b->status().message(), "must stay silent"));
}

TEST(ControlChannelFdTest, AMalformedRecordIsRefusedAndItsDescriptorsClosed) {
  ChannelPair p = MakeChannelPair();
  // A record that says 3 but carries 1 descriptor.
  char record[8] = {'I', 'R', 'F', 'D', 3, 0, 0, 0};
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ScopedFd r(pipe_fds[0]), w(pipe_fds[1]);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  iovec iov{record, sizeof(record)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int wfd = w.get();
  std::memcpy(CMSG_DATA(c), &wfd, sizeof(int));
  ASSERT_EQ(::sendmsg(p.a->fd(), &msg, 0), 8);
  w.reset();  // the only write end left is the one in flight
  EXPECT_EQ(p.b->TakeFdBatch().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(p.b->peer_lost());
  // The received copy was closed: the pipe has no writer any more.
  char byte;
  EXPECT_EQ(::read(r.get(), &byte, 1), 0);
}

TEST(ControlChannelFdTest, TheWatcherIsNotWokenOverAndOverByAWaitingRecord) {
  ChannelPair p = MakeChannelPair();
  std::atomic<int> timer_calls{0};
  ControlChannel::WatchHooks hooks;
  hooks.next_timer = [] { return absl::InfiniteFuture(); };
  hooks.on_timer = [&](absl::Time) { timer_calls.fetch_add(1); };
  ASSERT_TRUE(p.b->StartWatcher(std::move(hooks)).ok());
  int fds[] = {0};
  ASSERT_TRUE(p.a->SendFds(fds, absl::InfiniteFuture()).ok());
  // Wait until the watcher has seen the record (it then polls for
  // hang-ups only).
  for (int i = 0; i < 2000 && p.b->poll_events() != POLLRDHUP; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(p.b->poll_events(), POLLRDHUP);
  const int seen = timer_calls.load();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_LE(timer_calls.load(), seen + 1);  // not spinning on a readable socket
  EXPECT_TRUE(p.b->TakeFdBatch().ok());
  EXPECT_TRUE(p.b->status().ok());
  p.b->StopWatcher();
}

}  // namespace
}  // namespace ipcrpc
