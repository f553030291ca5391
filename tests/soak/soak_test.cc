// Soak test: one test_server process, many client processes over every
// transport making random calls of all four kinds with random payloads,
// deadlines and cancellations, some of them killed (SIGKILL) mid-call, plus
// hostile clients in the mix (garbage bytes, a header that declares 4 MiB and
// sends nothing, a client that stops reading). Bounded in time: SOAK_SECONDS
// (default 20; run longer by hand, e.g. SOAK_SECONDS=600).
//
// Afterwards, and after the clients are gone:
//   * no call ended with a status other than the expected ones (OK,
//     DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED);
//   * the server still answers, and its open fds and threads are back to
//     what they were after a warm-up round, its RSS within a bound of it;
//   * no IPC object is left (the leak check of every e2e binary).
// Nothing is timed; the bounds are on counts and memory.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/ipc_leak_check.h"
#include "transports/unix_socket.h"

namespace ipcrpc::test {
namespace {

constexpr int kCodes = 17;
using CodeCounts = std::array<uint64_t, kCodes>;

absl::Duration SoakDuration() {
  const char* s = std::getenv("SOAK_SECONDS");
  int seconds = 20;
  if (s != nullptr && !absl::SimpleAtoi(s, &seconds)) seconds = 20;
  return absl::Seconds(std::max(1, seconds));
}

// One random call; returns its status.
absl::Status RandomCall(TestService::Stub& stub, std::mt19937& rng) {
  ClientContext ctx;
  std::uniform_int_distribution<int> pick(0, 99);
  const int deadline_kind = pick(rng);
  if (deadline_kind < 30) {
    ctx.set_timeout(absl::Milliseconds(1 + pick(rng)));
  } else if (deadline_kind < 90) {
    ctx.set_timeout(absl::Seconds(5));
  }  // else: no deadline (the server's handlers all end by themselves)
  Request req;
  const int size_kind = pick(rng);
  req.set_payload(std::string(size_kind < 70 ? pick(rng) : size_kind < 95 ? 64 << 10 : 1 << 20,
                              'p'));
  if (pick(rng) < 10) req.set_delay_ms(pick(rng) % 20);
  std::thread canceller;
  if (pick(rng) < 10) {
    absl::Duration after = absl::Microseconds(pick(rng) * 50);
    canceller = std::thread([&ctx, after] {
      absl::SleepFor(after);
      ctx.TryCancel();
    });
  }
  absl::Status status;
  Response resp;
  switch (pick(rng) % 4) {
    case 0:
      status = stub.Echo(&ctx, req, &resp);
      break;
    case 1: {
      req.set_count(pick(rng) % 8);
      auto reader = stub.ServerStream(&ctx, req);
      while (reader->Read(&resp)) {
      }
      status = reader->Finish();
      break;
    }
    case 2: {
      auto writer = stub.ClientStream(&ctx, &resp);
      for (int i = pick(rng) % 8; i > 0 && writer->Write(req); --i) {
      }
      writer->WritesDone();
      status = writer->Finish();
      break;
    }
    default: {
      auto stream = stub.Bidi(&ctx);
      for (int i = pick(rng) % 8; i > 0; --i) {
        if (!stream->Write(req) || !stream->Read(&resp)) break;
      }
      stream->WritesDone();
      while (stream->Read(&resp)) {
      }
      status = stream->Finish();
    }
  }
  if (canceller.joinable()) canceller.join();
  return status;
}

// A well-behaved client: random calls until `until`, over `transport`.
// Writes its per-code counts to `out_fd`; never returns.
[[noreturn]] void RunClient(const std::string& address, absl::Time until, uint32_t seed,
                            int out_fd) {
  std::mt19937 rng(seed);
  CodeCounts counts{};
  auto channel = CreateChannel(address);
  if (channel.ok()) {
    auto stub = TestService::NewStub(*channel);
    while (absl::Now() < until) {
      absl::Status s = RandomCall(*stub, rng);
      int code = static_cast<int>(s.code());
      ++counts[code >= 0 && code < kCodes ? code : 2];
      if (!s.ok() && s.code() != absl::StatusCode::kDeadlineExceeded &&
          s.code() != absl::StatusCode::kCancelled &&
          s.code() != absl::StatusCode::kResourceExhausted) {
        std::fprintf(stderr, "[ soak client %u ] %s: unexpected %s\n", seed, address.c_str(),
                     s.ToString().c_str());
      }
    }
  } else {
    ++counts[static_cast<int>(channel.status().code())];
  }
  ssize_t ignored = ::write(out_fd, counts.data(), sizeof(counts));
  (void)ignored;
  ::_exit(0);
}

// A hostile client: connects to the unix socket and misbehaves in one of
// several ways, repeatedly, until `until`.
[[noreturn]] void RunAttacker(const std::string& socket_path, absl::Time until, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::unique_ptr<Transport>> held;
  while (absl::Now() < until) {
    auto connector = UnixSocketConnector::Create("unix:" + socket_path);
    if (!connector.ok()) break;
    auto t = (*connector)->Connect(absl::Now() + absl::Seconds(1));
    if (!t.ok()) {
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    std::string bytes;
    switch (rng() % 4) {
      case 0:  // garbage
        bytes = std::string(64, '\xa5');
        break;
      case 1:  // a HELLO-typed header declaring 4 MiB, then nothing
        bytes = std::string("IR\x01\x01\0\0\0\0\0\0\x40\0\0\0\0\0", 16);
        break;
      case 2:  // a valid-looking header of an unknown type with a short payload
        bytes = std::string("IR\x01\x7f\0\0\0\0\x04\0\0\0\0\0\0\0abcd", 20);
        break;
      default:  // connects and says nothing
        break;
    }
    absl::string_view chunks[] = {bytes};
    if (!bytes.empty()) (*t)->Write(chunks, absl::Now() + absl::Seconds(1)).IgnoreError();
    held.push_back(std::move(*t));
    if (held.size() > 8) held.erase(held.begin());  // holds a few open at a time
    absl::SleepFor(absl::Milliseconds(rng() % 20));
  }
  ::_exit(0);
}

struct ServerUsage {
  int fds = 0;
  int threads = 0;
  int64_t rss_kib = 0;
};

ServerUsage Usage(pid_t pid) {
  ServerUsage u;
  std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  if (std::unique_ptr<DIR, int (*)(DIR*)> d{::opendir(fd_dir.c_str()), ::closedir}; d) {
    while (dirent* e = ::readdir(d.get())) u.fds += e->d_name[0] != '.';
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  while (status >> key) {
    if (key == "Threads:") status >> u.threads;
    if (key == "VmRSS:") status >> u.rss_kib;
  }
  return u;
}

bool ServerAnswers(const std::string& address) {
  auto channel = CreateChannel(address);
  if (!channel.ok()) return false;
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Response resp;
  return stub->Echo(&ctx, Request(), &resp).ok();
}

// One round: `clients` client processes (one in four killed at a random
// moment) and `attackers` hostile ones, for `length`. Returns the summed
// per-code counts of the clients that were not killed.
CodeCounts Round(const ServerProcess& server, int clients, int attackers, absl::Duration length,
                 uint32_t seed) {
  const std::vector<std::string> transports = TransportsUnderTest();
  const absl::Time until = absl::Now() + length;
  std::mt19937 rng(seed);
  struct Child {
    pid_t pid;
    int out_fd;
    bool to_kill;
  };
  std::vector<Child> children;
  for (int i = 0; i < clients + attackers; ++i) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) std::abort();
    const uint32_t child_seed = rng();
    const std::string address =
        transports[child_seed % transports.size()] + ":" + server.socket_path();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipe_fds[0]);
      if (i < clients) RunClient(address, until, child_seed, pipe_fds[1]);
      RunAttacker(server.socket_path(), until, child_seed);
    }
    ::close(pipe_fds[1]);
    children.push_back({pid, pipe_fds[0], i < clients && i % 4 == 3});
  }
  // Kill the chosen clients at random moments during the round.
  for (Child& c : children) {
    if (!c.to_kill || c.pid <= 0) continue;
    absl::SleepFor(length / (2 * clients) * (rng() % 4 + 1));
    ::kill(c.pid, SIGKILL);
  }
  CodeCounts total{};
  for (Child& c : children) {
    if (c.pid > 0) ::waitpid(c.pid, nullptr, 0);
    CodeCounts counts{};
    if (::read(c.out_fd, counts.data(), sizeof(counts)) == static_cast<ssize_t>(sizeof(counts))) {
      for (int k = 0; k < kCodes; ++k) total[k] += counts[k];
    }
    ::close(c.out_fd);
  }
  return total;
}

TEST(SoakTest, ManyClientsEveryTransportRandomCallsKillsAndAttacks) {
  ServerProcess server;
  const std::string unix_address = "unix:" + server.socket_path();
  // Warm-up: pools, arenas and per-transport set-up reach their steady size.
  Round(server, 4, 1, absl::Seconds(2), 1);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(ServerAnswers(unix_address));
  const ServerUsage baseline = Usage(server.pid());

  const absl::Duration length = SoakDuration();
  CodeCounts counts = Round(server, 12, 3, length, 2);
  uint64_t calls = 0, ok = 0;
  for (int k = 0; k < kCodes; ++k) calls += counts[k];
  ok = counts[0];
  std::printf("[ soak ] %s: %llu calls by surviving clients, %llu OK, %llu DEADLINE_EXCEEDED, "
              "%llu CANCELLED, %llu RESOURCE_EXHAUSTED\n",
              absl::FormatDuration(length).c_str(), static_cast<unsigned long long>(calls),
              static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(counts[static_cast<int>(absl::StatusCode::kDeadlineExceeded)]),
              static_cast<unsigned long long>(counts[static_cast<int>(absl::StatusCode::kCancelled)]),
              static_cast<unsigned long long>(counts[static_cast<int>(absl::StatusCode::kResourceExhausted)]));
  EXPECT_GT(ok, 0u);
  for (int k = 0; k < kCodes; ++k) {
    auto code = static_cast<absl::StatusCode>(k);
    if (code == absl::StatusCode::kOk || code == absl::StatusCode::kDeadlineExceeded ||
        code == absl::StatusCode::kCancelled || code == absl::StatusCode::kResourceExhausted) {
      continue;
    }
    EXPECT_EQ(counts[k], 0u) << counts[k] << " calls ended " << absl::StatusCodeToString(code)
                             << " (see the clients' messages above)";
  }

  // The server recovers: everything it held for the clients is released.
  ASSERT_TRUE(ServerAnswers(unix_address)) << "the server no longer answers";
  ServerUsage after = Usage(server.pid());
  for (int i = 0; i < 100 && (after.fds > baseline.fds || after.threads > baseline.threads); ++i) {
    absl::SleepFor(absl::Milliseconds(50));  // connections still closing
    after = Usage(server.pid());
  }
  std::printf("[ soak ] server fds %d -> %d, threads %d -> %d, RSS %lld -> %lld KiB\n",
              baseline.fds, after.fds, baseline.threads, after.threads,
              static_cast<long long>(baseline.rss_kib), static_cast<long long>(after.rss_kib));
  EXPECT_LE(after.fds, baseline.fds) << "the server holds more descriptors than before";
  EXPECT_LE(after.threads, baseline.threads + 2) << "the server holds more threads than before";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizer builds keep freed memory in quarantine and shadow it: their
  // RSS says nothing about the server's own.
#else
  EXPECT_LE(after.rss_kib, baseline.rss_kib + 64 * 1024) << "the server's memory grew by > 64 MiB";
#endif
}

}  // namespace
}  // namespace ipcrpc::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new ipcrpc::testing::IpcLeakCheck);
  return RUN_ALL_TESTS();
}
