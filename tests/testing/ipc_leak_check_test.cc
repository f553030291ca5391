#include "tests/testing/ipc_leak_check.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace ipcrpc::testing {
namespace {

TEST(IpcLeakCheckTest, SeesQueuesAndTmpEntries) {
  int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  ASSERT_GE(q, 0);
  std::string dir = "/tmp/ipcrpc-test-" + std::to_string(getpid()) + "-leak-check";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::set<std::string> during = SnapshotIpcObjects();
  EXPECT_EQ(during.count("sysv-msg id " + std::to_string(q)), 1u);
  EXPECT_EQ(during.count(dir), 1u);
  msgctl(q, IPC_RMID, nullptr);
  rmdir(dir.c_str());
  std::set<std::string> after = SnapshotIpcObjects();
  EXPECT_EQ(after.count("sysv-msg id " + std::to_string(q)), 0u);
  EXPECT_EQ(after.count(dir), 0u);
}

}  // namespace
}  // namespace ipcrpc::testing
