#include "transports/unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace ipcrpc {
namespace {

// Removed, with every socket file in it, when the test binary exits.
testing::ScopedTempDir g_dir;

std::string TempSocketPath(absl::string_view name) {
  return g_dir.File(absl::StrCat(name, ".sock"));
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadAll(Transport& t, size_t n) {
  std::string out;
  char buf[256];
  while (out.size() < n) {
    auto r = t.Read(absl::MakeSpan(buf, sizeof(buf)), absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) break;
    out.append(buf, *r);
  }
  return out;
}

TEST(SocketPairTest, GatherWriteArrivesInOrder) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::string_view chunks[] = {"hello", "", " ", "world"};
  ASSERT_TRUE(pair->first->Write(chunks, absl::InfiniteFuture()).ok());
  EXPECT_EQ(ReadAll(*pair->second, 11), "hello world");
  EXPECT_EQ(pair->second->peer().pid, ::getpid());
  EXPECT_EQ(pair->second->peer().uid, ::getuid());
}

TEST(SocketPairTest, LargeWriteCompletesWhileReaderDrains) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::string big(8 << 20, 'x');
  std::thread writer([&] {
    absl::string_view chunks[] = {big};
    EXPECT_TRUE(pair->first->Write(chunks, absl::Now() + absl::Seconds(30)).ok());
  });
  EXPECT_EQ(ReadAll(*pair->second, big.size()).size(), big.size());
  writer.join();
}

TEST(SocketPairTest, ReadDeadlineIsDeadlineExceeded) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  char buf[8];
  absl::Time start = absl::Now();
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), start + absl::Milliseconds(30));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
}

TEST(SocketPairTest, WriteDeadlineWhenPeerDoesNotRead) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::string big(64 << 20, 'x');
  absl::string_view chunks[] = {big};
  absl::Status s = pair->first->Write(chunks, absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST(SocketPairTest, InterruptWakesBlockedRead) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::thread kicker([&] {
    absl::SleepFor(absl::Milliseconds(20));
    pair->second->Interrupt();
  });
  char buf[8];
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::InfiniteFuture());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  kicker.join();
}

TEST(SocketPairTest, InterruptBeforeTheReadWaitsAbortsIt) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  pair->second->Interrupt();
  char buf[8];
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Seconds(30));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  // One interrupt, one aborted read: the next waits for its deadline.
  r = pair->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
}

// A thread's reads on several connections share its eventfd: an interrupt
// that came after one read was served wakes that thread's next wait (on
// another connection) at most spuriously, never aborts it.
TEST(SocketPairTest, AnInterruptForOneConnectionDoesNotAbortAnother) {
  auto a = MakeSocketPair();
  auto b = MakeSocketPair();
  ASSERT_TRUE(a.ok() && b.ok());
  char buf[8];
  // The thread's eventfd exists once it has waited.
  auto r = a->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  std::thread kicker([&] {
    absl::SleepFor(absl::Milliseconds(20));
    a->second->Interrupt();
    absl::SleepFor(absl::Milliseconds(20));
    absl::string_view chunks[] = {"b"};
    EXPECT_TRUE(b->first->Write(chunks, absl::InfiniteFuture()).ok());
  });
  r = b->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Seconds(30));
  kicker.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 1u);
  // The interrupt is still a's.
  r = a->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Seconds(30));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
}

// A thread's eventfd made before fork() is shared with the child; a child
// thread waiting on it could drain the signal of an Interrupt() meant for the
// parent, whose read then waited until its deadline. The child makes its own.
TEST(SocketPairTest, AForkedChildNeverTakesTheParentsInterrupts) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  char buf[8];
  // This thread's eventfd exists once it has waited.
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(1));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Waits, and is woken by every signal of its thread's eventfd, for 3 s.
    auto own = MakeSocketPair();
    if (!own.ok()) ::_exit(1);
    const absl::Time end = absl::Now() + absl::Seconds(3);
    while (absl::Now() < end) {
      (void)own->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(100));
    }
    ::_exit(0);
  }
  absl::SleepFor(absl::Milliseconds(50));  // the child waits
  int lost = 0;
  for (int i = 0; i < 20; ++i) {
    std::thread kicker([&] {
      absl::SleepFor(absl::Milliseconds(10));
      pair->second->Interrupt();
    });
    r = pair->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(500));
    kicker.join();
    if (r.status().code() != absl::StatusCode::kAborted) ++lost;
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(lost, 0) << "interrupts of 20 reads lost to the forked child";
}

// Before: every transport had an eventfd of its own (two descriptors per
// connection end). After: one; a reading thread has one eventfd for all.
TEST(SocketPairTest, AConnectionEndHoldsOneDescriptor) {
  auto open_fds = [] {
    int n = 0;
    for (int fd = 0; fd < 4096; ++fd) n += ::fcntl(fd, F_GETFD) >= 0 ? 1 : 0;
    return n;
  };
  constexpr int kPairs = 50;
  std::vector<std::unique_ptr<Transport>> ends;
  char buf[8];
  const int before = open_fds();
  for (int i = 0; i < kPairs; ++i) {
    auto pair = MakeSocketPair();
    ASSERT_TRUE(pair.ok());
    // Each read waits (and is interrupted): still no descriptor of its own.
    pair->second->Interrupt();
    auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Seconds(30));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
    ends.push_back(std::move(pair->first));
    ends.push_back(std::move(pair->second));
  }
  // At most this thread's eventfd besides the sockets.
  EXPECT_LE(open_fds() - before, 2 * kPairs + 1);
}

TEST(SocketPairTest, PeerCloseIsUnavailableAndWriteDoesNotRaiseSigpipe) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  pair->first.reset();
  char buf[8];
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::InfiniteFuture());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("peer closed"), std::string::npos);
  absl::string_view chunks[] = {"x"};
  absl::Status s = pair->second->Write(chunks, absl::InfiniteFuture());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(SocketPairTest, ShutdownUnblocksReader) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    pair->second->Shutdown();
  });
  char buf[8];
  auto r = pair->second->Read(absl::MakeSpan(buf, 8), absl::InfiniteFuture());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  closer.join();
}

TEST(SocketPairTest, PassesFileDescriptors) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ScopedFd read_end(p[0]), write_end(p[1]);
  int fds[] = {write_end.get()};
  absl::string_view chunks[] = {"F"};
  ASSERT_TRUE(pair->first->WriteWithFds(chunks, fds, absl::InfiniteFuture()).ok());
  std::vector<ScopedFd> got;
  char buf[4];
  auto r = pair->second->ReadWithFds(absl::MakeSpan(buf, 4), &got, absl::InfiniteFuture());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(::write(got[0].get(), "z", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
  EXPECT_EQ(c, 'z');
}

TEST(SocketPairTest, UnexpectedFdsAreRejectedNotLeaked) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  int fds[] = {0};
  absl::string_view chunks[] = {"F"};
  ASSERT_TRUE(pair->first->WriteWithFds(chunks, fds, absl::InfiniteFuture()).ok());
  char buf[4];
  auto r = pair->second->Read(absl::MakeSpan(buf, 4), absl::InfiniteFuture());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

TEST(SocketPairTest, TooManyFdsRejectedBySender) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::vector<int> fds(kMaxFdsPerWrite + 1, 0);
  absl::string_view chunks[] = {"F"};
  EXPECT_EQ(pair->first->WriteWithFds(chunks, fds, absl::InfiniteFuture()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SocketPairTest, FdBatchesStayApartPerWrite) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ScopedFd read_end(p[0]), write_end(p[1]);
  int first[] = {read_end.get(), write_end.get()};
  int second[] = {write_end.get()};
  absl::string_view a[] = {"AA"};
  absl::string_view b[] = {"BBB"};
  ASSERT_TRUE(pair->first->WriteWithFds(a, first, absl::InfiniteFuture()).ok());
  ASSERT_TRUE(pair->first->WriteWithFds(b, second, absl::InfiniteFuture()).ok());
  std::vector<FdBatch> batches;
  char buf[16];
  size_t total = 0;
  while (total < 5) {
    auto r = pair->second->ReadWithFdBatches(absl::MakeSpan(buf + total, sizeof(buf) - total),
                                             &batches, absl::InfiniteFuture());
    ASSERT_TRUE(r.ok()) << r.status();
    total += *r;
  }
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].fds.size(), 2u);
  EXPECT_EQ(batches[1].fds.size(), 1u);
  EXPECT_FALSE(batches[0].truncated || batches[1].truncated);
}

TEST(SocketPairTest, OutOfDescriptorsGivesTruncatedBatch) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  int fds[] = {0, 1};
  absl::string_view chunks[] = {"F"};
  ASSERT_TRUE(pair->first->WriteWithFds(chunks, fds, absl::InfiniteFuture()).ok());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  std::vector<ScopedFd> fillers;  // take every free descriptor below the new limit
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (;;) {
    int fd = ::dup(0);
    if (fd < 0) break;
    fillers.emplace_back(fd);
  }
  std::vector<FdBatch> batches;
  char buf[4];
  auto r = pair->second->ReadWithFdBatches(absl::MakeSpan(buf, 4), &batches,
                                           absl::InfiniteFuture());
  fillers.clear();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 1u);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_TRUE(batches[0].truncated);
  EXPECT_TRUE(batches[0].fds.empty());
}

// A read that must wait makes the waiting thread's eventfd on first use
// (Interrupt() signals it). A process out of descriptors cannot make one: the
// read fails with a status saying so — no crash, no wait without a way to be
// interrupted — and works once descriptors are free again.
TEST(SocketPairTest, AThreadThatCannotMakeItsWakeFdGetsAStatus) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  absl::Status first;
  absl::StatusOr<size_t> second = 0;
  std::thread reader([&] {  // a thread that never waited: no eventfd yet
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    rlimit low = old;
    low.rlim_cur = 64;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<ScopedFd> fillers;  // every free descriptor below the new limit
    for (;;) {
      int fd = ::dup(0);
      if (fd < 0) break;
      fillers.emplace_back(fd);
    }
    char buf[4];
    first = pair->second->Read(absl::MakeSpan(buf, 4), absl::Now() + absl::Seconds(10)).status();
    fillers.clear();
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
    absl::string_view chunks[] = {"x"};
    ASSERT_TRUE(pair->first->Write(chunks, absl::InfiniteFuture()).ok());
    second = pair->second->Read(absl::MakeSpan(buf, 4), absl::Now() + absl::Seconds(10));
  });
  reader.join();
  EXPECT_TRUE(absl::IsResourceExhausted(first)) << first;
  EXPECT_NE(first.message().find("wake-up eventfd"), absl::string_view::npos) << first;
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 1u);
}

TEST(UnixSocketTest, ListenConnectAcceptAndRemoveFile) {
  std::string path = TempSocketPath("lca");
  std::string address = "unix:" + path;
  auto listener = UnixSocketListener::Listen(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_TRUE(Exists(path));
  auto connector = UnixSocketConnector::Create(address);
  ASSERT_TRUE(connector.ok());
  auto client = (*connector)->Connect(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = (*listener)->Accept();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::string_view chunks[] = {"ping"};
  ASSERT_TRUE((*client)->Write(chunks, absl::InfiniteFuture()).ok());
  EXPECT_EQ(ReadAll(**server, 4), "ping");
  EXPECT_EQ((*server)->peer().pid, ::getpid());
  listener->reset();
  EXPECT_FALSE(Exists(path));
}

TEST(UnixSocketTest, ConnectToNobodyIsUnavailableFast) {
  auto connector = UnixSocketConnector::Create("unix:" + TempSocketPath("nobody"));
  ASSERT_TRUE(connector.ok());
  absl::Time start = absl::Now();
  auto client = (*connector)->Connect(absl::Now() + absl::Seconds(5));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable) << client.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST(UnixSocketTest, StaleSocketFileIsReplacedLiveOneIsNot) {
  std::string path = TempSocketPath("stale");
  {
    // A socket file nobody listens on: what a crashed server leaves behind.
    ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(Exists(path));
  auto first = UnixSocketListener::Listen("unix:" + path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = UnixSocketListener::Listen("unix:" + path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  first->reset();
  EXPECT_FALSE(Exists(path));
}

TEST(UnixSocketTest, RegularFileIsNeverRemoved) {
  std::string path = TempSocketPath("regular");
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto listener = UnixSocketListener::Listen("unix:" + path);
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kAlreadyExists) << listener.status();
  EXPECT_TRUE(Exists(path));
  ::unlink(path.c_str());
}

TEST(UnixSocketTest, AbstractNamespace) {
  std::string address = absl::StrCat("unix-abstract:ipcrpc-test-", ::getpid());
  auto listener = UnixSocketListener::Listen(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  auto client = (*UnixSocketConnector::Create(address))->Connect(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*listener)->Accept().ok());
}

TEST(UnixSocketTest, CloseWakesAccept) {
  auto listener = UnixSocketListener::Listen("unix:" + TempSocketPath("close"));
  ASSERT_TRUE(listener.ok());
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    (*listener)->Close();
  });
  auto r = (*listener)->Accept();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  closer.join();
}

}  // namespace
}  // namespace ipcrpc

