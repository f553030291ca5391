// ipcrpc fifo transport tests: shared helpers and the per-test checks
// (fifo_test_util.h).

#include "transports/fifo/fifo_test_util.h"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"

namespace ipcrpc::fifo_test {

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

namespace {

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

}  // namespace

FifoOptions TestOptions() {
  FifoOptions options;
  options.parent_dir = ParentDir();
  return options;
}

std::pair<ScopedFd, ScopedFd> ControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    std::perror("socketpair");
    std::abort();
  }
  return {ScopedFd(sv[0]), ScopedFd(sv[1])};
}

absl::StatusOr<testing::TransportPair> MakeFifoPair() {
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
  return testing::TransportPair{std::move(client), std::move(server)};
}

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

}  // namespace ipcrpc::fifo_test
