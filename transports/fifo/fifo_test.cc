#include "transports/fifo/fifo.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

using ::ipcrpc::testing::TransportContractTest;
using ::ipcrpc::testing::TransportFactory;
using ::ipcrpc::testing::TransportPair;

constexpr absl::Duration kPatience = absl::Seconds(20);

// ---------------------------------------------------------------------------
// Per-test checks. Every test (the contract suite's too) gets a fresh, short
// parent directory under /tmp for its FIFO directories; afterwards that
// directory must be empty (nothing left on disk) and the process must hold
// exactly the file descriptors it held before.

std::string& ParentDir() {
  static std::string* dir = new std::string;
  return *dir;
}

int CountOpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void RemoveTree(const std::string& dir) {
  ::nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, FTW*) {
        ::remove(path);
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

class PerTestChecks : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override {
    char dir[] = "/tmp/ipcrpc-fifo-test-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
      std::perror("mkdtemp /tmp/ipcrpc-fifo-test-XXXXXX");
      std::abort();
    }
    ParentDir() = dir;
    fds_before_ = CountOpenFds();
  }
  // End events run in reverse order of registration, so this runs before
  // the result printer and a failure here shows as the test's failure.
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::vector<std::string> left = ListDir(ParentDir());
    EXPECT_TRUE(left.empty()) << "left on disk under " << ParentDir() << ": "
                              << absl::StrJoin(left, ", ");
    EXPECT_EQ(CountOpenFds(), fds_before_) << "file descriptors leaked";
    RemoveTree(ParentDir());
  }
  int fds_before_ = 0;
};

const bool kPerTestChecksRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new PerTestChecks);
  return true;
}();

FifoOptions TestOptions() {
  FifoOptions options;
  options.parent_dir = ParentDir();
  return options;
}

// ---------------------------------------------------------------------------
// Helpers.

std::pair<ScopedFd, ScopedFd> ControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    std::perror("socketpair");
    std::abort();
  }
  return {ScopedFd(sv[0]), ScopedFd(sv[1])};
}

// The whole upgrade in one process: left is the client's end, right the
// server's.
absl::StatusOr<TransportPair> MakeFifoPair() {
  auto [server_control, client_control] = ControlPair();
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending,
                          PrepareFifo(TestOptions()));
  wire::TransportOffer offer;
  std::vector<int> fds;
  pending->FillOffer(&offer, &fds);
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<Transport> client,
                          AttachFifo(offer, {}, std::move(client_control), TestOptions()));
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<Transport> server,
                          pending->Complete(std::move(server_control), absl::Now() + kPatience));
  return TransportPair{std::move(client), std::move(server)};
}

INSTANTIATE_TEST_SUITE_P(Fifo, TransportContractTest,
                         ::testing::Values(TransportFactory{"fifo", &MakeFifoPair}),
                         [](const auto& info) { return info.param.name; });

bool IsFifo(const std::string& path, mode_t* mode) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return false;
  *mode = st.st_mode & 07777;
  return S_ISFIFO(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool SigpipePending() {
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

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
  EXPECT_EQ((*client)->max_fds_per_write(), 0);
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

// ---------------------------------------------------------------------------
// Checks of what the client is offered.

class FifoAttachChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pending = PrepareFifo(TestOptions());
    ASSERT_TRUE(pending.ok()) << pending.status();
    pending_ = std::move(*pending);
    std::vector<int> fds;
    pending_->FillOffer(&offer_, &fds);
  }

  // Attaches to offer_ with a fresh control socket; returns the status.
  absl::Status Attach(const wire::TransportOffer& offer, std::vector<ScopedFd> fds = {}) {
    auto [server_control, client_control] = ControlPair();
    return AttachFifo(offer, std::move(fds), std::move(client_control), TestOptions()).status();
  }

  // offer_ with client_to_server_path replaced by `path`.
  wire::TransportOffer OfferWithC2s(const std::string& path) {
    wire::TransportOffer offer = offer_;
    offer.mutable_fifo()->set_client_to_server_path(path);
    return offer;
  }

  std::string Aside(absl::string_view name) { return absl::StrCat(ParentDir(), "/", name); }

  std::unique_ptr<PendingTransport> pending_;
  wire::TransportOffer offer_;
};

TEST_F(FifoAttachChecks, TheRealOfferAttaches) { EXPECT_TRUE(Attach(offer_).ok()); }

TEST_F(FifoAttachChecks, ARegularFileIsRefused) {
  const std::string file = Aside("regular");
  ScopedFd fd(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  absl::Status s = Attach(OfferWithC2s(file));
  ::unlink(file.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "is a regular file, not a FIFO")) << s;
}

TEST_F(FifoAttachChecks, ASymlinkToTheRealFifoIsRefused) {
  const std::string link = Aside("link");
  ASSERT_EQ(::symlink(offer_.fifo().client_to_server_path().c_str(), link.c_str()), 0);
  absl::Status s = Attach(OfferWithC2s(link));
  ::unlink(link.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "symbolic link")) << s;
}

TEST_F(FifoAttachChecks, AMissingPathIsNotFound) {
  absl::Status s = Attach(OfferWithC2s(Aside("missing")));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "missing")) << s;
}

TEST_F(FifoAttachChecks, AFifoOfAnotherUserIsRefused) {
  const std::string fifo = Aside("foreign");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Needs real root (not, e.g., root of Bazel's sandbox user namespace).
  if (::chown(fifo.c_str(), 65534, 65534) < 0) {
    int err = errno;
    ::unlink(fifo.c_str());
    GTEST_SKIP() << "cannot give a FIFO to uid 65534 here: " << ErrnoStatus(err, "chown");
  }
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "owned by uid 65534")) << s;
}

TEST_F(FifoAttachChecks, ADirectoryOthersCanWriteIsRefused) {
  const std::string dir = Aside("open");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  const std::string fifo = dir + "/c2s";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "writable by other users")) << s;
}

TEST_F(FifoAttachChecks, AFifoWithoutTheServersReaderIsRefused) {
  const std::string fifo = Aside("unread");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::Status s = Attach(OfferWithC2s(fifo));
  ::unlink(fifo.c_str());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no reader")) << s;
}

TEST_F(FifoAttachChecks, MalformedOffersAreInvalidArgument) {
  EXPECT_EQ(Attach(OfferWithC2s("relative/c2s")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(OfferWithC2s("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(OfferWithC2s(offer_.fifo().server_to_client_path())).code(),
            absl::StatusCode::kInvalidArgument);
  wire::TransportOffer shm = offer_;
  shm.set_transport("shm");
  EXPECT_EQ(Attach(shm).code(), absl::StatusCode::kInvalidArgument);
  std::vector<ScopedFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  absl::Status s = Attach(offer_, std::move(fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(FifoAttachChecks, AControlSocketThatIsNotASocketIsRefused) {
  ScopedFd not_a_socket(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto t = AttachFifo(offer_, {}, std::move(not_a_socket), TestOptions());
  EXPECT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), "control socket")) << t.status();
}

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
}  // namespace ipcrpc
