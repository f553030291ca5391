// Tests of the fifo transport with the client in a forked child: a child
// killed mid-read or while this side writes is UNAVAILABLE promptly, never a
// SIGPIPE.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/fifo/fifo.h"
#include "transports/fifo/fifo_test_util.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::fifo_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// fifo_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

// ---------------------------------------------------------------------------
// Across processes: the client runs in a forked child.

enum class ChildRole { kEcho, kIdle };

// The child: reads the offer (4-byte length + TransportOffer) from the
// control socket, attaches, sends one byte standing in for TRANSPORT_ACK,
// then echoes everything (kEcho) or reads nothing (kIdle) until killed.
[[noreturn]] void RunChild(int control, ChildRole role) {
  uint32_t size = 0;
  if (::read(control, &size, sizeof(size)) != sizeof(size) || size > (1 << 16)) ::_exit(2);
  std::string bytes(size, '\0');
  for (size_t got = 0; got < size;) {
    ssize_t n = ::read(control, &bytes[got], size - got);
    if (n <= 0) ::_exit(3);
    got += static_cast<size_t>(n);
  }
  wire::TransportOffer offer;
  if (!offer.ParseFromString(bytes)) ::_exit(4);
  auto transport = AttachFifo(offer, {}, ScopedFd(control), FifoOptions());
  if (!transport.ok()) ::_exit(5);
  // The transport owns the socket now; the ACK goes out on the same fd.
  if (::write(control, "A", 1) != 1) ::_exit(6);
  if (role == ChildRole::kIdle) {
    for (;;) ::pause();
  }
  char buf[4096];
  for (;;) {
    auto n = (*transport)->Read(absl::MakeSpan(buf), absl::InfiniteFuture());
    if (!n.ok()) ::_exit(0);
    if (!WriteAll(**transport, absl::string_view(buf, *n), absl::InfiniteFuture()).ok()) {
      ::_exit(0);
    }
  }
}

// The parent's side: a forked child attached over FIFOs. Kills and reaps the
// child when destroyed.
class ChildClient {
 public:
  ChildClient() = default;
  ChildClient(const ChildClient&) = delete;
  ChildClient& operator=(const ChildClient&) = delete;
  ~ChildClient() {
    if (pid_ > 0) {
      Kill();
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Forks the child and plays the server's part of the upgrade.
  absl::Status Start(ChildRole role) {
    auto [server_control, client_control] = ControlPair();
    pid_ = ::fork();
    if (pid_ < 0) return ErrnoStatus(errno, "fork");
    if (pid_ == 0) {
      server_control.reset();
      RunChild(client_control.release(), role);
    }
    client_control.reset();
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending,
                            PrepareFifo(TestOptions()));
    wire::TransportOffer offer;
    std::vector<int> fds;
    pending->FillOffer(&offer, &fds);
    std::string bytes = offer.SerializeAsString();
    uint32_t size = static_cast<uint32_t>(bytes.size());
    bytes.insert(0, reinterpret_cast<const char*>(&size), sizeof(size));
    if (::write(server_control.get(), bytes.data(), bytes.size()) !=
        static_cast<ssize_t>(bytes.size())) {
      return ErrnoStatus(errno, "sending the offer");
    }
    pollfd ack_ready = {server_control.get(), POLLIN, 0};
    char ack = 0;
    if (::poll(&ack_ready, 1, 5000) != 1 || ::read(server_control.get(), &ack, 1) != 1 ||
        ack != 'A') {
      return absl::InternalError("the child did not attach");
    }
    IPCRPC_ASSIGN_OR_RETURN(server_,
                            pending->Complete(std::move(server_control), absl::Now() + kPatience));
    return absl::OkStatus();
  }

  Transport& server() { return *server_; }
  void Kill() { ::kill(pid_, SIGKILL); }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<Transport> server_;
};

TEST(FifoAcrossProcesses, ChildKilledMidReadIsUnavailableWithinASecond) {
  ChildClient child;
  absl::Status started = child.Start(ChildRole::kEcho);
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(WriteAll(child.server(), "echo me").ok());
  auto echoed = ReadExactly(child.server(), 7);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "echo me");

  std::atomic<int64_t> killed_at_ns{0};
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    killed_at_ns = absl::GetCurrentTimeNanos();
    child.Kill();
  });
  char buf[8];
  auto r = child.server().Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  absl::Duration after_kill = absl::Nanoseconds(absl::GetCurrentTimeNanos() - killed_at_ns);
  killer.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(after_kill, absl::Seconds(1));
  std::printf("[fifo] Read returned %s after SIGKILL of the child\n",
              absl::FormatDuration(after_kill).c_str());
}

TEST(FifoAcrossProcesses, ChildKilledWhileWeWriteIsUnavailableNotSigpipe) {
  ChildClient child;
  absl::Status started = child.Start(ChildRole::kIdle);
  ASSERT_TRUE(started.ok()) << started;
  const std::string big(64 << 20, 'w');  // far more than the pipe holds
  absl::Status status;
  std::thread writer([&] { status = WriteAll(child.server(), big); });
  absl::SleepFor(absl::Milliseconds(100));
  absl::Time killed_at = absl::Now();
  child.Kill();
  writer.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LT(absl::Now() - killed_at, absl::Seconds(5));
  EXPECT_FALSE(SigpipePending());
  struct sigaction action;
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &action), 0);
  EXPECT_EQ(action.sa_handler, SIG_DFL) << "the process-wide disposition was changed";
}

}  // namespace
}  // namespace ipcrpc::fifo_test
