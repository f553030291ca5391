// Tests of the named-pipe transport: the Transport contract, set-up and
// what it leaves on disk, shutdown and control-socket liveness, SIGPIPE.
// What the client is offered: fifo_attach_test.cc; a client in another
// process: fifo_process_test.cc. Every test is checked for files left on
// disk and leaked fds (fifo_test_util.h).

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
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

using testing::TransportContractTest;
using testing::TransportFactory;

INSTANTIATE_TEST_SUITE_P(Fifo, TransportContractTest,
                         ::testing::Values(TransportFactory{"fifo", &MakeFifoPair}),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Set-up and what it leaves on disk.

TEST(FifoSetUp, DirectoryAndFifosExistOnlyUntilComplete) {
  auto [server_control, client_control] = ControlPair();
  auto pending = PrepareFifo(TestOptions());
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  EXPECT_EQ(offer.transport(), "fifo");
  EXPECT_TRUE(fds.empty());
  const std::string c2s = offer.fifo().client_to_server_path();
  const std::string s2c = offer.fifo().server_to_client_path();
  ASSERT_TRUE(absl::StartsWith(c2s, ParentDir() + "/")) << c2s;
  const std::string dir = c2s.substr(0, c2s.rfind('/'));
  EXPECT_EQ(s2c.substr(0, s2c.rfind('/')), dir);

  struct stat st;
  ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  mode_t mode = 0;
  EXPECT_TRUE(IsFifo(c2s, &mode));
  EXPECT_EQ(mode, 0600u);
  EXPECT_TRUE(IsFifo(s2c, &mode));
  EXPECT_EQ(mode, 0600u);

  auto client = AttachFifo(offer, {}, std::move(client_control), TestOptions());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE(Exists(dir)) << "removed before the server completed";
  auto server = (*pending)->Complete(std::move(server_control), absl::Now() + kPatience);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(Exists(c2s));
  EXPECT_FALSE(Exists(s2c));
  EXPECT_FALSE(Exists(dir));

  // The unlinked FIFOs still carry the stream both ways.
  ASSERT_TRUE(WriteAll(**client, "ping").ok());
  auto got = ReadExactly(**server, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "ping");
  ASSERT_TRUE(WriteAll(**server, "pong").ok());
  got = ReadExactly(**client, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "pong");
  EXPECT_EQ((*client)->max_fds_per_write(), 253);  // ControlChannel::kMaxFdsPerRecord
  EXPECT_EQ((*server)->peer().uid, ::getuid());
  EXPECT_EQ((*client)->peer().pid, ::getpid());
  // Complete is called at most once.
  auto again = (*pending)->Complete(ScopedFd(), absl::Now());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
}

TEST(FifoSetUp, PendingDestroyedBeforeCompleteRemovesEverything) {
  auto [server_control, client_control] = ControlPair();
  auto pending = PrepareFifo(TestOptions());
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto client = AttachFifo(offer, {}, std::move(client_control), TestOptions());
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_FALSE(ListDir(ParentDir()).empty());
  pending->reset();
  EXPECT_TRUE(ListDir(ParentDir()).empty()) << absl::StrJoin(ListDir(ParentDir()), ", ");
  // The server gives up on the connection: the client, attached to a server
  // that never completed, sees its control socket close.
  server_control.reset();
  char buf[4];
  auto r = (*client)->Read(absl::MakeSpan(buf), absl::Now() + absl::Seconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(FifoSetUp, PrepareInAMissingParentDirectoryFailsClearly) {
  FifoOptions options;
  options.parent_dir = ParentDir() + "/does-not-exist";
  auto pending = PrepareFifo(options);
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kNotFound) << pending.status();
  EXPECT_TRUE(absl::StrContains(pending.status().message(), "does-not-exist"))
      << pending.status();
  options.parent_dir = "";
  EXPECT_EQ(PrepareFifo(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FifoSetUp, CompleteWithoutTheClientsReaderIsFailedPrecondition) {
  auto [server_control, client_control] = ControlPair();
  auto pending = PrepareFifo(TestOptions());
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  // A client that opens its write end but not its read end, then ACKs.
  ScopedFd writer(::open(offer.fifo().client_to_server_path().c_str(),
                         O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(writer.valid());
  auto server = (*pending)->Complete(std::move(server_control), absl::Now() + kPatience);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
  EXPECT_TRUE(absl::StrContains(server.status().message(), "no reader")) << server.status();
  EXPECT_TRUE(ListDir(ParentDir()).empty()) << "a failed Complete left files behind";
}

// The client's reader exists before the server has opened its write end;
// Linux's read() then says 0 as if at end-of-file. That must not look like a
// closed connection.
TEST(FifoSetUp, ClientReadBeforeCompleteWaitsForTheServer) {
  auto [server_control, client_control] = ControlPair();
  auto pending = PrepareFifo(TestOptions());
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto client = AttachFifo(offer, {}, std::move(client_control), TestOptions());
  ASSERT_TRUE(client.ok()) << client.status();

  char buf[8];
  auto early = (*client)->Read(absl::MakeSpan(buf), absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded) << early.status();

  absl::StatusOr<std::string> got;
  std::thread reader([&] { got = ReadExactly(**client, 5); });
  absl::SleepFor(absl::Milliseconds(30));  // let the reader block first
  auto server = (*pending)->Complete(std::move(server_control), absl::Now() + kPatience);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WriteAll(**server, "hello").ok());
  reader.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello");
}

TEST(FifoTransport, ShutdownFailsLaterCallsOnBothSides) {
  auto pair = MakeFifoPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  pair->left->Shutdown();
  EXPECT_EQ(WriteAll(*pair->left, "x").code(), absl::StatusCode::kUnavailable);
  char buf[4];
  EXPECT_EQ(pair->left->Read(absl::MakeSpan(buf), absl::Now() + kPatience).status().code(),
            absl::StatusCode::kUnavailable);
  // The peer still holds the FIFOs open; its control socket tells it.
  absl::Status peer_write = WriteAll(*pair->right, "y");
  EXPECT_EQ(peer_write.code(), absl::StatusCode::kUnavailable) << peer_write;
  EXPECT_TRUE(absl::StrContains(peer_write.message(), "peer closed")) << peer_write;
}

TEST(FifoTransport, StrayBytesOnTheControlSocketEndTheConnection) {
  auto [server_control, client_control] = ControlPair();
  int raw_client_control = client_control.get();
  auto pending = PrepareFifo(TestOptions());
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto client = AttachFifo(offer, {}, std::move(client_control), TestOptions());
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = (*pending)->Complete(std::move(server_control), absl::Now() + kPatience);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_EQ(::write(raw_client_control, "!", 1), 1);  // behind the transport's back
  char buf[4];
  auto r = (*server)->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "control socket")) << r.status();
}

// ---------------------------------------------------------------------------
// SIGPIPE: a write to a FIFO without a reader.

// A server transport whose client is played by hand: `reader` is the
// client's read end of s2c, which the test can close on its own.
struct HandPlayedClient {
  std::unique_ptr<Transport> server;
  ScopedFd writer;  // client's end of c2s
  ScopedFd reader;  // client's end of s2c
  ScopedFd control;
};

HandPlayedClient MakeServerWithHandPlayedClient() {
  HandPlayedClient out;
  auto [server_control, client_control] = ControlPair();
  out.control = std::move(client_control);
  auto pending = PrepareFifo(TestOptions());
  EXPECT_TRUE(pending.ok()) << pending.status();
  if (!pending.ok()) return out;
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  out.writer.reset(::open(offer.fifo().client_to_server_path().c_str(),
                          O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  out.reader.reset(::open(offer.fifo().server_to_client_path().c_str(),
                          O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  auto server = (*pending)->Complete(std::move(server_control), absl::Now() + kPatience);
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) out.server = std::move(*server);
  return out;
}

TEST(FifoSigpipe, WriteWithoutAReaderIsUnavailableAndLeavesNoSignalBehind) {
  HandPlayedClient h = MakeServerWithHandPlayedClient();
  ASSERT_NE(h.server, nullptr);
  struct sigaction before, after;
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &before), 0);
  sigset_t mask_before, mask_after;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &mask_before), 0);
  ASSERT_FALSE(SigpipePending());

  h.reader.reset();  // the client's reader goes; its control socket stays
  absl::Status s = WriteAll(*h.server, "into the void");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "peer closed")) << s;

  // Still alive, nothing pending, disposition and mask as they were.
  EXPECT_FALSE(SigpipePending());
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &mask_after), 0);
  EXPECT_EQ(sigismember(&mask_after, SIGPIPE), sigismember(&mask_before, SIGPIPE));
  // Later writes fail the same way, without trying.
  EXPECT_EQ(WriteAll(*h.server, "again").code(), absl::StatusCode::kUnavailable);
}

TEST(FifoSigpipe, ASigpipePendingBeforeTheWriteIsNotConsumed) {
  HandPlayedClient h = MakeServerWithHandPlayedClient();
  ASSERT_NE(h.server, nullptr);
  // Someone else's SIGPIPE, pending on this thread while it is blocked.
  sigset_t sigpipe, old_mask;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &sigpipe, &old_mask), 0);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGPIPE), 0);
  ASSERT_TRUE(SigpipePending());

  h.reader.reset();
  absl::Status s = WriteAll(*h.server, "into the void");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(SigpipePending()) << "the transport consumed a SIGPIPE that was not its own";

  const timespec zero = {0, 0};
  EXPECT_EQ(::sigtimedwait(&sigpipe, nullptr, &zero), SIGPIPE);
  EXPECT_FALSE(SigpipePending());
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);
}

}  // namespace
}  // namespace ipcrpc::fifo_test
