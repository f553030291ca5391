// Tests for runtime/access_policy.h: each rule lets in exactly whom it names.

#include "runtime/access_policy.h"

#include <limits.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace ipcrpc {
namespace {

PeerCredentials Peer(uid_t uid, gid_t gid, pid_t pid = 1) { return {pid, uid, gid}; }

std::string SelfExecutable() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : "";
}

TEST(AccessPolicyTest, DefaultLetsInTheServersUserAndRootOnly) {
  AccessPolicy policy;
  EXPECT_TRUE(policy.Check(Peer(::geteuid(), 12345)).ok());
  EXPECT_TRUE(policy.Check(Peer(0, 0)).ok());
  const uid_t other = ::geteuid() == 4242 ? 4343 : 4242;
  absl::Status s = policy.Check(Peer(other, 4242, 77));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("pid 77, uid " + std::to_string(other)), std::string::npos) << s;
  EXPECT_EQ(policy.Check(PeerCredentials()).code(), absl::StatusCode::kPermissionDenied)
      << "a peer of unknown identity is not the server's user";
}

TEST(AccessPolicyTest, ListedUidsAndGidsAndEveryone) {
  AccessPolicy policy;
  policy.allow_same_uid = false;
  policy.allow_root = false;
  policy.allowed_uids = {4242};
  policy.allowed_gids = {777};
  EXPECT_TRUE(policy.Check(Peer(4242, 1)).ok());
  EXPECT_TRUE(policy.Check(Peer(9, 777)).ok());
  EXPECT_FALSE(policy.Check(Peer(0, 0)).ok());
  policy.allow_any_peer = true;
  EXPECT_TRUE(policy.Check(Peer(9, 9)).ok());
}

TEST(AccessPolicyTest, ExecutablesNarrowTheRulesDown) {
  AccessPolicy policy;
  policy.allowed_executables = {SelfExecutable()};
  EXPECT_TRUE(policy.Check(Peer(::geteuid(), ::getegid(), ::getpid())).ok());
  policy.allowed_executables = {"/usr/bin/some-other-program"};
  absl::Status s = policy.Check(Peer(::geteuid(), ::getegid(), ::getpid()));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find(SelfExecutable()), std::string::npos) << s;
}

TEST(AccessPolicyTest, ACustomCheckCanRefuseWithItsReason) {
  AccessPolicy policy;
  policy.custom = [](const PeerCredentials& peer) {
    return peer.pid % 2 == 0 ? absl::OkStatus() : absl::UnauthenticatedError("odd pid");
  };
  EXPECT_TRUE(policy.Check(Peer(0, 0, 2)).ok());
  absl::Status s = policy.Check(Peer(0, 0, 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "odd pid");
}

}  // namespace
}  // namespace ipcrpc
