// Access control in real processes: a test_server running as root, clients
// in forked children that drop to uid/gid 65534 ("nobody"). Covers the
// server's access policy (runtime/access_policy.h) on a filesystem and an
// abstract address, on unix and on a negotiated transport, and the socket
// file's mode. Needs root (to become another user); skipped otherwise.

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

constexpr uid_t kNobody = 65534;

// Calls Echo on `address`, in this process, and returns the status.
absl::Status Call(const std::string& address) {
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address);
  if (!channel.ok()) return channel.status();
  auto stub = TestService::NewStub(*channel);
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(10));
  Request request;
  request.set_text("hi");
  Response response;
  return stub->Echo(&ctx, request, &response);
}

// Calls Echo on `address` from a child process running as uid/gid 65534 and
// returns the status code it got (its message goes to the test's log).
// Forks from this single-threaded test process, so the child may allocate.
absl::StatusCode CallAsNobody(const std::string& address) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      std::perror("dropping privileges");
      ::_exit(100);
    }
    absl::Status s = Call(address);
    std::fprintf(stderr, "[ as uid %d ] %s: %s\n", static_cast<int>(::getuid()),
                 address.c_str(), s.ToString().c_str());
    ::_exit(static_cast<int>(s.code()));
  }
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) > 16) {
    ADD_FAILURE() << "the unprivileged child failed: " << wstatus;
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(WEXITSTATUS(wstatus));
}

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  }
  static std::string AbstractAddress(absl::string_view tag) {
    return absl::StrCat("unix:@ipcrpc-access-", tag, "-", ::getpid());
  }
};

// Before: an abstract address had no permissions at all, and any uid's calls
// were served.
TEST_F(AccessControlTest, TheDefaultPolicyRefusesAnotherUserEvenOnAnAbstractAddress) {
  const std::string address = AbstractAddress("default");
  ServerProcess server({}, "", address);
  EXPECT_TRUE(Call(address).ok());
  EXPECT_EQ(CallAsNobody(address), absl::StatusCode::kPermissionDenied);
  // The refusal comes before negotiation: no ring, no FIFOs, no queues.
  const std::string socket = address.substr(std::string("unix:").size());
  EXPECT_EQ(CallAsNobody("shm:" + socket), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CallAsNobody("auto:" + socket), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Call(address).ok()) << "the server serves its own user after refusing others";
}

TEST_F(AccessControlTest, AUserThePolicyListsIsServedOverUnixAndShm) {
  const std::string address = AbstractAddress("listed");
  ServerProcess server({}, absl::StrCat("server { allowed_uids: ", kNobody, " }"), address);
  const std::string socket = address.substr(std::string("unix:").size());
  EXPECT_EQ(CallAsNobody(address), absl::StatusCode::kOk);
  EXPECT_EQ(CallAsNobody("shm:" + socket), absl::StatusCode::kOk);
}

TEST_F(AccessControlTest, AGroupThePolicyListsIsServed) {
  const std::string address = AbstractAddress("group");
  ServerProcess server({}, absl::StrCat("server { allowed_gids: ", kNobody, " }"), address);
  EXPECT_EQ(CallAsNobody(address), absl::StatusCode::kOk);
}

// Before: the socket file had whatever mode the umask gave it.
TEST_F(AccessControlTest, TheSocketFileIsOwnerOnlyByDefault) {
  ServerProcess server;
  struct stat st;
  ASSERT_EQ(::stat(server.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::chmod(server.dir().c_str(), 0755), 0);  // the directory is not what stops it
  EXPECT_EQ(CallAsNobody(server.address()), absl::StatusCode::kPermissionDenied);
}

// A mode that lets everyone connect does not bypass the policy.
TEST_F(AccessControlTest, AnOpenSocketModeStillAnswersToThePolicy) {
  ServerProcess server({}, "server { socket_mode: 438 }");  // 0666
  struct stat st;
  ASSERT_EQ(::stat(server.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  ASSERT_EQ(::chmod(server.dir().c_str(), 0755), 0);
  EXPECT_EQ(CallAsNobody(server.address()), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Call(server.address()).ok());
}

TEST_F(AccessControlTest, AllowAnyPeerLetsEveryoneIn) {
  ServerProcess server({}, "server { socket_mode: 438 allow_any_peer: true }");
  ASSERT_EQ(::chmod(server.dir().c_str(), 0755), 0);
  EXPECT_EQ(CallAsNobody(server.address()), absl::StatusCode::kOk);
}

}  // namespace
}  // namespace ipcrpc::test
