// Tests of the shared-memory transport across processes: nothing left
// behind (fds, /dev/shm, a watcher thread that cannot start), a peer process
// killed mid-call, and a cross-process round-trip figure.
//
// The cross-process tests start this binary again (argv[1] == kChildFlag) as
// the client; main() is at the bottom.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transports/shm/shm_ring.h"
#include "transports/shm/shm_test_util.h"
#include "transports/testing/transport_contract.h"

extern char** environ;

namespace ipcrpc::shm_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// shm_ring_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

constexpr char kChildFlag[] = "--shm_test_child";

IPCRPC_INSTANTIATE_WAKE_MODES(ShmModeTest);

// ---------------------------------------------------------------------------
// Nothing left behind.

std::set<std::string> ListDir(const char* path) {
  std::set<std::string> names;
  if (DIR* dir = ::opendir(path)) {
    while (dirent* e = ::readdir(dir)) names.insert(e->d_name);
    ::closedir(dir);
  }
  return names;
}

size_t OpenFdCount() { return ListDir("/proc/self/fd").size(); }

// A watcher thread that cannot be created (RLIMIT_NPROC = 0 for a non-root
// user makes clone() fail) fails the attach with RESOURCE_EXHAUSTED; before
// the shared ControlChannel, std::thread's exception terminated the process.
// Runs in a child that drops root; skipped where uid 65534 is not available
// (Bazel's sandbox maps only uid 0; run the binary directly to see it run).
TEST(ShmCleanupTest, AWatcherThatCannotStartIsResourceExhaustedNotTerminate) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() != 0) ::_exit(77);
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(77);
    }
    rlimit none = {0, 0};
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(3);
    auto c = Connect(Options(4096, wire::ShmParams::FUTEX));
    if (c.ok()) ::_exit(4);
    if (c.status().code() != absl::StatusCode::kResourceExhausted) ::_exit(5);
    if (!Mentions(c.status().message(), "cannot start the watcher thread")) ::_exit(6);
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << "the child died: " << wstatus;
  if (WEXITSTATUS(wstatus) == 77) GTEST_SKIP() << "cannot become uid 65534 here";
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "see the _exit codes in the child";
}

TEST(ShmCleanupTest, NoFdLeaksAndNothingInDevShm) {
  const std::set<std::string> dev_shm = ListDir("/dev/shm");
  const size_t fds = OpenFdCount();
  for (auto wake : {wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE}) {
    {  // A connection that carried bytes both ways.
      auto c = Connect(Options(4096, wake));
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ(ListDir("/dev/shm"), dev_shm);
      ASSERT_TRUE(WriteAll(*c->client, "there").ok());
      ASSERT_TRUE(ReadExactly(*c->server, 5).ok());
      ASSERT_TRUE(WriteAll(*c->server, "back").ok());
      ASSERT_TRUE(ReadExactly(*c->client, 4).ok());
    }
    {  // A server whose client never came.
      auto pending = PrepareShm(Options(4096, wake));
      ASSERT_TRUE(pending.ok());
    }
    {  // An attach that failed, on a connection that then went away.
      OfferFixture f = MakeOffer(wake);
      wire::TransportOffer offer = f.offer;
      offer.mutable_shm()->set_ring_bytes(8192);
      EXPECT_FALSE(AttachWith(offer, DupAll(f.fds)).ok());
    }
  }
  EXPECT_EQ(OpenFdCount(), fds);
  EXPECT_EQ(ListDir("/dev/shm"), dev_shm);
}

// ---------------------------------------------------------------------------
// Another process: this binary started again as the client.

int CpuCount() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

// The n-th CPU this process may run on.
int AllowedCpu(int n) {
  cpu_set_t set;
  ::sched_getaffinity(0, sizeof(set), &set);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set) && n-- == 0) return cpu;
  }
  return -1;
}

absl::Status PinTo(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(pid, sizeof(set), &set) != 0) return ErrnoStatus(errno, "pin");
  return absl::OkStatus();
}

class ChildProcess {
 public:
  // Starts the client ("echo": echoes everything; "idle": never reads) and
  // returns once it has attached; server() is the parent's end.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::string& mode,
                                                            const ShmOptions& options) {
    IPCRPC_ASSIGN_OR_RETURN(ControlPair control, MakeControlPair());
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending, PrepareShm(options));
    wire::TransportOffer offer;
    std::vector<int> fds;
    pending->FillOffer(&offer, &fds);
    // Above 4, so that dup2 onto 3 and 4 never meets an fd already there.
    ScopedFd child_control(::fcntl(control.client.get(), F_DUPFD_CLOEXEC, 10));
    ScopedFd child_memfd(::fcntl(fds[0], F_DUPFD_CLOEXEC, 10));
    control.client.reset();
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, child_control.get(), 3);
    ::posix_spawn_file_actions_adddup2(&actions, child_memfd.get(), 4);
    std::string hex = absl::BytesToHexString(offer.SerializeAsString());
    std::string spin = options.spin ? "1" : "0";
    std::string exe = "/proc/self/exe";
    std::vector<char*> argv = {exe.data(), const_cast<char*>(kChildFlag), 
                               const_cast<char*>(mode.c_str()), hex.data(), spin.data(),
                               nullptr};
    pid_t pid;
    int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return ErrnoStatus(rc, "posix_spawn");
    auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid));
    // The child's TRANSPORT_ACK: one byte on the control socket once attached.
    pollfd p = {control.server.get(), POLLIN, 0};
    char ack = 0;
    if (::poll(&p, 1, 20000) != 1 || ::read(control.server.get(), &ack, 1) != 1 || ack != 'Y') {
      return absl::InternalError("the child did not attach");
    }
    IPCRPC_ASSIGN_OR_RETURN(child->server_, pending->Complete(std::move(control.server),
                                                              absl::Now() + kPatience));
    return child;
  }

  ~ChildProcess() {
    server_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Reap();
    }
  }

  pid_t pid() const { return pid_; }
  Transport& server() { return *server_; }
  int Reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::unique_ptr<Transport> server_;
};

// main() of the child.
int RunChild(const std::string& mode, const std::string& offer_hex, bool spin) {
  wire::TransportOffer offer;
  if (!offer.ParseFromString(absl::HexStringToBytes(offer_hex))) return 2;
  ScopedFd ack(::fcntl(3, F_DUPFD_CLOEXEC, 10));
  std::vector<ScopedFd> fds;
  fds.emplace_back(4);
  ShmOptions options;
  options.spin = spin;
  auto transport = AttachShm(offer, std::move(fds), ScopedFd(3), options);
  char answer = transport.ok() ? 'Y' : 'N';
  if (::write(ack.get(), &answer, 1) != 1 || !transport.ok()) return 3;
  ack.reset();
  if (mode == "idle") {
    for (;;) ::pause();
  }
  std::vector<char> buffer(1 << 16);
  for (;;) {
    auto n = (*transport)->Read(absl::MakeSpan(buffer), absl::InfiniteFuture());
    if (!n.ok()) return 0;
    absl::string_view chunks[] = {absl::string_view(buffer.data(), *n)};
    if (!(*transport)->Write(chunks, absl::InfiniteFuture()).ok()) return 0;
  }
}

TEST_P(ShmModeTest, ChildKilledMidReadIsUnavailablePromptly) {
  auto child = ChildProcess::Start("echo", Options(1 << 16, GetParam()));
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(WriteAll((*child)->server(), "ping").ok());
  auto echo = ReadExactly((*child)->server(), 4);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "ping");

  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(200));  // the parent sleeps in Read by then
    killed_at = absl::Now();
    ::kill((*child)->pid(), SIGKILL);
  });
  char buf[8];
  auto r = (*child)->server().Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  absl::Time returned_at = absl::Now();
  killer.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(returned_at - killed_at, kPromptly);
  std::printf("[ shm ] %s: Read returned UNAVAILABLE %s after SIGKILL of the peer\n",
              wire::ShmParams::Wake_Name(GetParam()).c_str(),
              absl::FormatDuration(returned_at - killed_at).c_str());
  int status = (*child)->Reap();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_P(ShmModeTest, ChildKilledWhileTheWriterWaitsForSpace) {
  auto child = ChildProcess::Start("idle", Options(4096, GetParam()));
  ASSERT_TRUE(child.ok()) << child.status();
  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(200));
    killed_at = absl::Now();
    ::kill((*child)->pid(), SIGKILL);
  });
  absl::Status s = WriteAll((*child)->server(), std::string(1 << 20, 'z'));
  absl::Time returned_at = absl::Now();
  killer.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(returned_at - killed_at, kPromptly);
}

// Round trips of 64 bytes between two processes, printed (not asserted): the
// figures depend on the machine and its load.
struct Percentiles {
  absl::Duration p50, p99;
};

Percentiles Summarize(std::vector<absl::Duration> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

TEST(ShmFiguresTest, CrossProcessRoundTrip) {
  const int cpus = CpuCount();
  struct Placement {
    std::string name;
    int parent_cpu, child_cpu;  // -1: not pinned
  };
  std::vector<Placement> placements = {{"unpinned", -1, -1}};
  if (cpus >= 2) placements.push_back({"different CPUs", AllowedCpu(0), AllowedCpu(1)});
  placements.push_back({"same CPU", AllowedCpu(0), AllowedCpu(0)});
  cpu_set_t original;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(original), &original), 0);
  for (auto wake : {wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE}) {
    for (bool spin : {true, false}) {
      for (const Placement& placement : placements) {
        auto child = ChildProcess::Start("echo", Options(1 << 16, wake, spin));
        ASSERT_TRUE(child.ok()) << child.status();
        if (placement.parent_cpu >= 0) {
          ASSERT_TRUE(PinTo(0, placement.parent_cpu).ok());
          ASSERT_TRUE(PinTo((*child)->pid(), placement.child_cpu).ok());
        }
        const std::string message(64, 'm');
        std::string echo(64, '\0');
        const int kWarmUp = 200, kRounds = spin ? 20000 : 3000;
        const absl::Time deadline = absl::Now() + kPatience;
        std::vector<absl::Duration> samples;
        samples.reserve(kRounds);
        for (int i = 0; i < kWarmUp + kRounds; ++i) {
          auto start = std::chrono::steady_clock::now();
          ASSERT_TRUE(WriteAll((*child)->server(), message, deadline).ok());
          for (size_t got = 0; got < echo.size();) {
            auto r = (*child)->server().Read(absl::MakeSpan(&echo[got], echo.size() - got),
                                             deadline);
            ASSERT_TRUE(r.ok()) << r.status();
            got += *r;
          }
          if (i >= kWarmUp) {
            samples.push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
          }
        }
        ASSERT_EQ(::sched_setaffinity(0, sizeof(original), &original), 0);
        Percentiles p = Summarize(samples);
        std::printf("[ shm ] round trip 64 B, 2 processes, %-9s spin %-3s %-15s p50 %8.2f us"
                    "  p99 %8.2f us\n",
                    wire::ShmParams::Wake_Name(wake).c_str(), spin ? "on" : "off",
                    placement.name.c_str(), absl::ToDoubleMicroseconds(p.p50),
                    absl::ToDoubleMicroseconds(p.p99));
      }
    }
  }
}

}  // namespace
}  // namespace ipcrpc::shm_test

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == ipcrpc::shm_test::kChildFlag) {
    return ipcrpc::shm_test::RunChild(argv[2], argv[3], std::string(argv[4]) == "1");
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
