// Server resource limits in real processes (issue 9, "bounded resources per
// peer"): what happens when the system refuses the server a thread (the
// server runs as a uid of its own under a small RLIMIT_NPROC, which needs root to set
// up; skipped otherwise) or fds (a small RLIMIT_NOFILE), and the connection
// caps. No assertion depends on timing.

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
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

// HELLO with protocol_version 1 and defaults for the rest (docs/PROTOCOL.md).
std::string HelloFrame() {
  return absl::HexStringToBytes("495201010000000002000000000000000801");
}

// The server process has not exited (WNOWAIT: it stays ServerProcess's to reap).
bool Alive(const ServerProcess& server) {
  if (server.pid() <= 0) return false;
  siginfo_t info = {};
  if (::waitid(P_PID, server.pid(), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

// `n` connections to `server`, each used by one call and then left idle;
// fewer, with a test failure, if one is not made or not served.
std::vector<std::unique_ptr<TestService::Stub>> OpenIdleConnections(const ServerProcess& server,
                                                                    int n) {
  std::vector<std::unique_ptr<TestService::Stub>> idle;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    if (!channel.ok()) {
      ADD_FAILURE() << "connection " << i << ": " << channel.status();
      break;
    }
    auto stub = TestService::NewStub(*channel);
    absl::Status s = Echo(*stub);
    if (!s.ok()) {
      ADD_FAILURE() << "connection " << i << ": " << s;
      break;
    }
    idle.push_back(std::move(stub));
  }
  return idle;
}

// The server's threads once they are at most `limit` (handshake threads end
// as their connections first wait in the loop), or after 5 s.
int ThreadsOnceAtMost(const ServerProcess& server, int limit) {
  int threads = server.Threads();
  for (int i = 0; i < 100 && threads > limit; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    threads = server.Threads();
  }
  return threads;
}

// Before: every new connection started a std::thread unguarded; the kernel's
// refusal (EAGAIN) became std::system_error and std::terminate, so the fifth
// connection here killed the server. After: that connection is refused with
// RESOURCE_EXHAUSTED and the server serves again once connections close.
// Connections that hold a server thread: each has not sent its HELLO, and
// its handshake keeps a thread until handshake_timeout (10 s; an idle
// connection holds none: it waits in the event loop).
TEST(ResourceLimitsTest, AServerOutOfThreadsRefusesConnectionsAndKeepsServing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the server as another user";
  ServerProcess server({"--nproc_headroom=4"}, "server { allowed_uids: 0 }");
  std::vector<int> silent;  // connected, no HELLO: each holds a handshake thread
  int served = 0;
  int refused = 0;
  for (int i = 0; i < 40 && refused == 0 && Alive(server); ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    absl::Status s = Echo(*TestService::NewStub(*channel));
    if (s.ok()) {
      ++served;
    } else {
      EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
      EXPECT_NE(s.message().find("thread"), absl::string_view::npos) << s;
      ++refused;
    }
    const int fd = ConnectRaw(server.socket_path());
    ASSERT_GE(fd, 0);
    silent.push_back(fd);
  }
  ASSERT_TRUE(Alive(server)) << "the server died when it ran out of threads (served " << served
                             << ", refused " << refused << ")";
  EXPECT_GT(served, 0);
  EXPECT_GT(refused, 0) << "the thread limit was never reached";
  std::fprintf(stderr, "served %d connections, refused one with %zu silent ones open\n", served,
               silent.size());

  // Load drops: the server serves a new client again.
  for (int fd : silent) ::close(fd);
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

// The event loop (docs/EVENT_CORE.md): a unix connection that is not being
// read holds no server thread — neither an idle one nor one whose peer sent
// half a frame and stopped. Before: one thread each (+kConnections threads
// here). The server stays within the thread limit of the test above, and a
// call on a fresh connection is served throughout.
TEST(ResourceLimitsTest, IdleAndHalfSentConnectionsHoldNoServerThread) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the server as another user";
  ServerProcess server({"--nproc_headroom=8"}, "server { allowed_uids: 0 }");
  constexpr int kConnections = 100;
  {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    ASSERT_TRUE(Echo(*TestService::NewStub(*channel)).ok());
  }
  const int threads_before = server.Threads();
  // Idle: one call each, then nothing.
  std::vector<std::unique_ptr<TestService::Stub>> idle = OpenIdleConnections(server, kConnections);
  ASSERT_EQ(idle.size(), static_cast<size_t>(kConnections));
  // Half-sent: HELLO, then 5 bytes of a frame header.
  std::vector<int> half_sent;
  for (int i = 0; i < kConnections; ++i) {
    const int fd = ConnectRaw(server.socket_path());
    ASSERT_GE(fd, 0);
    half_sent.push_back(fd);
    ASSERT_TRUE(SendAll(fd, HelloFrame()));
    ASSERT_FALSE(ReceiveFrame(fd).empty()) << "no HELLO back on raw connection " << i;
    ASSERT_TRUE(SendAll(fd, std::string("IR\x01\x02\x00", 5)));
    ASSERT_TRUE(WaitUntilConsumed(fd));
  }
  // Handshake threads end once their connection first waits in the loop.
  const int threads_after = ThreadsOnceAtMost(server, threads_before + 4);
  EXPECT_LE(threads_after, threads_before + 4)
      << 2 * kConnections << " waiting connections took " << threads_after - threads_before
      << " server threads";
  // Still served, on a new connection and on an idle one.
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  EXPECT_TRUE(Echo(*TestService::NewStub(*channel)).ok());
  EXPECT_TRUE(Echo(*idle[kConnections / 2]).ok());
  for (int fd : half_sent) ::close(fd);
  EXPECT_TRUE(Alive(server));
}

// Echo on a fresh channel until one is served (up to ~30 s); the last status.
absl::Status EchoUntilServed(const std::string& address) {
  absl::Status last;
  for (int attempt = 0; attempt < 60; ++attempt) {
    ChannelOptions options;
    options.connect_timeout = absl::Seconds(1);
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address, options);
    if (!channel.ok()) return channel.status();
    last = Echo(*TestService::NewStub(*channel));
    if (last.ok()) return last;
    absl::SleepFor(absl::Milliseconds(500));
  }
  return last;
}

// Before: finished connections were reaped only when accept() succeeded;
// once fds ran out, accept() kept failing (EMFILE) and the dead connections
// kept their fds: the server refused every client for good. After: a reaper
// releases them as they finish, and the server serves again.
TEST(ResourceLimitsTest, AServerThatRanOutOfFdsServesAgainOnceConnectionsClose) {
  if (const char* s = std::getenv("IPCRPC_SANITIZER"); s != nullptr && std::string(s) == "ubsan") {
    // UBSan's vptr check opens a pipe to read the object; with no fd left it
    // reports every virtual call as "invalid vptr" (a false positive; see
    // .bazelrc). The normal, ASan and TSan runs cover this test.
    GTEST_SKIP() << "UBSan cannot check virtual calls in a process out of fds";
  }
  ServerProcess server({"--max_fds=64"});
  // Connections held open until the server answers one no more (its fds
  // are all in use: accept() fails EMFILE), then all closed.
  std::vector<int> fds;
  const std::string hello = HelloFrame();
  bool exhausted = false;
  for (int i = 0; i < 100 && !exhausted; ++i) {
    int fd = ConnectRaw(server.socket_path());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    // Not accepted: no HELLO within 10 s (accept() failed, the connection
    // waits in the backlog), or closed at once (accepted, but the server
    // could not create the connection's other fd).
    exhausted = !SendAll(fd, hello) || ReceiveFrame(fd).empty();
  }
  EXPECT_TRUE(exhausted) << "the server never ran out of fds";
  std::fprintf(stderr, "the server stopped accepting at connection %zu\n", fds.size());
  for (int fd : fds) ::close(fd);
  absl::Status s = EchoUntilServed(server.address());
  EXPECT_TRUE(s.ok()) << "the server never served again after running out of fds: " << s;
  EXPECT_TRUE(Alive(server));
}

// The connection caps refuse the excess before HELLO, with a clear status.
TEST(ResourceLimitsTest, ConnectionsBeyondMaxConnectionsAreRefusedResourceExhausted) {
  ServerProcess server({}, "server { max_connections: 3 }");
  std::vector<std::unique_ptr<TestService::Stub>> held;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    held.push_back(TestService::NewStub(*channel));
    ASSERT_TRUE(Echo(*held.back()).ok());
  }
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  absl::Status refused = Echo(*TestService::NewStub(*channel));
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_NE(refused.message().find("max_connections 3"), absl::string_view::npos) << refused;
  EXPECT_TRUE(Echo(*held.front()).ok()) << "the connections already served still are";
  held.pop_back();  // closes one connection: room for another
  absl::Status s = EchoUntilServed(server.address());
  EXPECT_TRUE(s.ok()) << s;
}

// The refusal goes out before any negotiation (PROTOCOL.md §4), so a client
// that connects and never writes is refused at once and does not hold up the
// accept thread. Before: the server first waited (up to 5 s) for the
// client's first frame, on the accept thread, then gave up without sending
// the refusal; ten such clients kept a real one from being accepted for ~50 s.
TEST(ResourceLimitsTest, ASilentClientIsRefusedWithoutHoldingUpTheAcceptThread) {
  ServerProcess server({}, "server { max_connections: 1 }");
  absl::StatusOr<std::shared_ptr<Channel>> held = CreateChannel(server.address());
  ASSERT_TRUE(held.ok());
  auto held_stub = TestService::NewStub(*held);
  ASSERT_TRUE(Echo(*held_stub).ok());
  std::vector<int> silent;
  for (int i = 0; i < 10; ++i) {
    const int fd = ConnectRaw(server.socket_path());
    ASSERT_GE(fd, 0);
    silent.push_back(fd);
  }
  for (int fd : silent) {
    const std::string frame = ReceiveFrame(fd);  // nothing sent: the server speaks first
    ASSERT_GE(frame.size(), 16u) << "a silent client got no refusal";
    EXPECT_EQ(frame[3], 9) << "not a GOAWAY";  // byte 3: the frame type
    EXPECT_NE(frame.find("max_connections 1"), std::string::npos);
    ::close(fd);
  }
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  absl::Status refused = Echo(*TestService::NewStub(*channel));
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
}

// max_concurrent_calls bounds the calls in progress on the whole server,
// whichever connections they come on; a call beyond it is refused and its
// connection serves the next one. Without the limit the third call here is
// always served.
TEST(ResourceLimitsTest, CallsBeyondMaxConcurrentCallsAreRefusedResourceExhausted) {
  ServerProcess server({}, "server { max_concurrent_calls: 2 }");
  // Two slow calls, each on a connection and a thread of its own. A slow call
  // can itself be refused if the prober's quick call reaches the server
  // first (nothing orders two connections); it is then sent again.
  std::atomic<int> slow_ok{0};
  std::vector<std::thread> slow_callers;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    slow_callers.emplace_back([&slow_ok, stub = TestService::NewStub(*channel)] {
      for (int attempt = 0; attempt < 50; ++attempt) {
        ClientContext ctx;
        ctx.set_timeout(absl::Seconds(30));
        Request request;
        request.set_text("slow");
        request.set_delay_ms(2000);
        Response response;
        absl::Status s = stub->Echo(&ctx, request, &response);
        if (absl::IsResourceExhausted(s)) {
          absl::SleepFor(absl::Milliseconds(10));
          continue;
        }
        if (s.ok()) ++slow_ok;
        return;
      }
    });
  }
  // A third connection: refused once both run (tried until they do). Only
  // two calls in flight at once can refuse it, and they are the slow ones.
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  absl::Status refused;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    refused = Echo(*stub);
    if (!refused.ok()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_NE(refused.message().find("max_concurrent_calls 2"), absl::string_view::npos)
      << refused;
  // Once they end, the same connection is served.
  for (std::thread& t : slow_callers) t.join();
  EXPECT_EQ(slow_ok.load(), 2);
  absl::Status later = Echo(*stub);
  EXPECT_TRUE(later.ok()) << later;
}

// The event loop under load (runtime/internal/event_loop.h). Before: its
// threads, back from turns at once, could all decide to end, and every
// connection was left unread (the benchmark's 16 clients hung in 3 of 3
// runs). Every call of many clients in ping-pong must be answered.
TEST(ResourceLimitsTest, ManyClientsInPingPongAreAllAnswered) {
  ServerProcess server;
  constexpr int kClients = 32;
  constexpr int kCalls = 5000;
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    clients.emplace_back([&failed, stub = TestService::NewStub(*channel)] {
      for (int call = 0; call < kCalls; ++call) {
        absl::Status s = Echo(*stub);  // 10 s deadline
        if (!s.ok()) {
          if (failed.fetch_add(1) == 0) ADD_FAILURE() << "call " << call << ": " << s;
          return;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
}

TEST(ResourceLimitsTest, ConnectionsFromOneUidBeyondItsCapAreRefusedResourceExhausted) {
  ServerProcess server({}, "server { max_connections_per_uid: 2 }");
  std::vector<std::unique_ptr<TestService::Stub>> held;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    held.push_back(TestService::NewStub(*channel));
    ASSERT_TRUE(Echo(*held.back()).ok());
  }
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  absl::Status refused = Echo(*TestService::NewStub(*channel));
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_NE(refused.message().find(absl::StrCat("from uid ", ::getuid())),
            absl::string_view::npos)
      << refused;
  EXPECT_NE(refused.message().find("max_connections_per_uid 2"), absl::string_view::npos)
      << refused;
}

// The number of fds the server process has open.
int FdCount(const ServerProcess& server) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(absl::StrCat("/proc/", server.pid(), "/fd"), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// The frame type of a whole frame (docs/PROTOCOL.md §2); -1 if none.
int FrameType(const std::string& frame) {
  return frame.size() < 16 ? -1 : static_cast<uint8_t>(frame[3]);
}
constexpr int kPingType = 8;
constexpr int kGoAwayType = 9;

// Reads and drops what arrives on `fd` until the peer closes it (true) or
// nothing has come for 30 s (false).
bool ClosedByPeer(int fd) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 30'000) != 1) return false;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR) return true;  // ECONNRESET: closed too
  }
}

// Before: ServerOptions had no idle timeout and a connection stayed open
// for as long as its client did. After: the server closes it (its fds are
// released) and the channel's next call reconnects.
TEST(ResourceLimitsTest, AnIdleConnectionIsClosedAndTheNextCallReconnects) {
  ServerProcess server({}, "server { idle_timeout_ms: 200 }");
  const int baseline = FdCount(server);
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  auto stub = TestService::NewStub(*channel);
  ASSERT_TRUE(Echo(*stub).ok());
  EXPECT_GT(FdCount(server), baseline);
  int fds = FdCount(server);
  for (int i = 0; i < 300 && fds > baseline; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    fds = FdCount(server);
  }
  EXPECT_EQ(fds, baseline) << "the idle connection was never closed";
  absl::Status s = Echo(*stub);
  EXPECT_TRUE(s.ok()) << "the call after an idle close failed: " << s;
}

// A client that never answers the server's keep-alive PING is closed; one
// that answers stays.
TEST(ResourceLimitsTest, AClientThatDoesNotAnswerKeepAlivePingsIsClosed) {
  ServerProcess server(
      {}, "server { idle_timeout_ms: 0 keepalive_time_ms: 100 keepalive_timeout_ms: 300 }");
  const std::string hello = HelloFrame();
  int silent = ConnectRaw(server.socket_path());
  int answering = ConnectRaw(server.socket_path());
  ASSERT_GE(silent, 0);
  ASSERT_GE(answering, 0);
  for (int fd : {silent, answering}) {
    ASSERT_TRUE(SendAll(fd, hello));
    ASSERT_EQ(FrameType(ReceiveFrame(fd)), 1);  // the server's HELLO
  }
  // The answering client acks three PINGs, and is pinged again: still open.
  for (int i = 0; i < 4; ++i) {
    std::string ping = ReceiveFrame(answering);
    ASSERT_EQ(FrameType(ping), kPingType) << "frame " << i;
    ASSERT_EQ(ping.size(), 24u);
    std::string ack = ping;
    ack[12] = 1;  // flags: ACK
    ASSERT_TRUE(SendAll(answering, ack));
  }
  std::string ping = ReceiveFrame(silent);
  EXPECT_EQ(FrameType(ping), kPingType);
  EXPECT_EQ(FrameType(ReceiveFrame(silent)), kGoAwayType);
  EXPECT_TRUE(ClosedByPeer(silent)) << "a client that never answered a PING was kept";
  ::close(silent);
  ::close(answering);
}

// In a forked child: opens `n` bidi streams on one channel to `address`,
// has each echo one message (so its handler holds a pool thread), writes
// "held refused" to `report`, and keeps them open (silent) until `hold`
// reads end-of-file.
void HoldSilentBidiStreams(const std::string& address, int n, int report, int hold) {
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address);
  if (!channel.ok()) ::_exit(1);
  auto stub = TestService::NewStub(*channel);
  std::vector<std::unique_ptr<ClientContext>> contexts;
  std::vector<std::unique_ptr<ClientReaderWriter<Request, Response>>> streams;
  int held = 0;
  int refused = 0;
  for (int i = 0; i < n; ++i) {
    contexts.push_back(std::make_unique<ClientContext>());
    streams.push_back(stub->Bidi(contexts.back().get()));
    Request request;
    request.set_text("hold");
    Response response;
    if (streams.back()->Write(request) && streams.back()->Read(&response)) {
      ++held;
    } else {
      absl::Status s = streams.back()->Finish();
      std::fprintf(stderr, "[ attacker ] stream %d: %s\n", i, s.ToString().c_str());
      if (absl::IsResourceExhausted(s)) ++refused;
    }
  }
  std::string counts = absl::StrCat(held, " ", refused, "\n");
  if (::write(report, counts.data(), counts.size()) < 0) ::_exit(1);
  char c;
  while (::read(hold, &c, 1) > 0) {
  }
  for (auto& c : contexts) c->TryCancel();
  ::_exit(0);
}

// Before: one client's 16 silent bidi streams held all 16 pool threads and
// every other client's streaming call waited until its deadline. After: that
// client gets its share (num_threads / 2); its further streaming calls are
// refused RESOURCE_EXHAUSTED at once, and another client's call is served.
TEST(ResourceLimitsTest, OneClientsSilentStreamsDoNotStarveAnotherClient) {
  ServerProcess server;
  int report[2], hold[2];
  ASSERT_EQ(::pipe(report), 0);
  ASSERT_EQ(::pipe(hold), 0);
  pid_t attacker = ::fork();  // from the single-threaded test: the child may allocate
  ASSERT_GE(attacker, 0);
  if (attacker == 0) {
    ::close(report[0]);
    ::close(hold[1]);
    HoldSilentBidiStreams(server.address(), 16, report[1], hold[0]);
  }
  ::close(report[1]);
  ::close(hold[0]);
  char buf[64] = {};
  ASSERT_GT(::read(report[0], buf, sizeof(buf) - 1), 0) << "the attacker died";
  int held = 0, refused = 0;
  ASSERT_EQ(std::sscanf(buf, "%d %d", &held, &refused), 2);
  std::fprintf(stderr, "the attacker holds %d streams, %d refused\n", held, refused);

  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));  // "never", on any machine
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  auto stream = TestService::NewStub(*channel)->Bidi(&ctx);
  Request request;
  request.set_text("victim");
  Response response;
  EXPECT_TRUE(stream->Write(request));
  EXPECT_TRUE(stream->Read(&response));
  EXPECT_TRUE(stream->WritesDone());
  absl::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << "another client's streaming call was starved: " << s;
  EXPECT_EQ(response.text(), "victim");
  EXPECT_EQ(held, 8) << "the attacker's share: num_threads / 2";
  EXPECT_EQ(refused, 8);

  ::close(hold[1]);
  ::close(report[0]);
  if (attacker > 0) ::waitpid(attacker, nullptr, 0);
}

// Thousands of connections (issue 11): idle unix connections cost the server
// no thread and one descriptor each. The server may hold only a little more
// than one fd per connection (--max_fds); before the event loop each held a
// thread, and before the per-thread eventfd two fds, so this many did not fit.
TEST(ResourceLimitsTest, TwoThousandIdleConnectionsCostTheServerNoThreadAndOneFdEach) {
  constexpr int kConnections = 2000;
  struct rlimit rl;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  const rlim_t need = 2 * kConnections + 256;  // this side: sockets and more
  if (rl.rlim_max < need) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max;
  if (rl.rlim_cur < need) {
    rl.rlim_cur = need;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  ServerProcess server({absl::StrCat("--max_fds=", kConnections + 128)},
                       "server { max_connections: 2100 max_connections_per_uid: 2100 }");
  {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
    ASSERT_TRUE(channel.ok());
    ASSERT_TRUE(Echo(*TestService::NewStub(*channel)).ok());
  }
  const int threads_before = server.Threads();
  const int fds_before = FdCount(server);
  std::vector<std::unique_ptr<TestService::Stub>> idle = OpenIdleConnections(server, kConnections);
  ASSERT_EQ(idle.size(), static_cast<size_t>(kConnections));
  const int threads_after = ThreadsOnceAtMost(server, threads_before + 4);
  EXPECT_LE(threads_after, threads_before + 4)
      << kConnections << " idle connections took " << threads_after - threads_before
      << " server threads";
  const int fds_after = FdCount(server);
  EXPECT_LE(fds_after - fds_before, kConnections + 16)
      << kConnections << " idle connections hold " << fds_after - fds_before << " server fds";
  std::fprintf(stderr, "%d idle connections: server threads %+d, fds %+d\n", kConnections,
               threads_after - threads_before, fds_after - fds_before);
  // Still served, on a new connection and on an idle one.
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  EXPECT_TRUE(Echo(*TestService::NewStub(*channel)).ok());
  EXPECT_TRUE(Echo(*idle[kConnections / 2]).ok());
}

}  // namespace
}  // namespace ipcrpc::test
