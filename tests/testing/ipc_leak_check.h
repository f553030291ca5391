// ipcrpc test support: fails the test binary if it leaves IPC objects behind.
//
// Register once per test binary:
//   ::testing::AddGlobalTestEnvironment(new ipcrpc::testing::IpcLeakCheck);
// It snapshots, before the first test and after the last: entries in
// /dev/shm, SysV message queues, semaphore sets and shared-memory segments
// (from /proc/sysvipc), and /tmp entries named ipcrpc-test-* (tests' socket
// directories) and ipcrpc-fifo-* (the FIFO transport's directories). Anything that appeared and is still there at the end is
// reported as a failure naming it.

#ifndef IPCRPC_TESTS_TESTING_IPC_LEAK_CHECK_H_
#define IPCRPC_TESTS_TESTING_IPC_LEAK_CHECK_H_

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace ipcrpc::testing {

// The IPC objects visible on this machine, one string each.
std::set<std::string> SnapshotIpcObjects();

class IpcLeakCheck : public ::testing::Environment {
 public:
  void SetUp() override { before_ = SnapshotIpcObjects(); }
  void TearDown() override;

 private:
  std::set<std::string> before_;
};

}  // namespace ipcrpc::testing

#endif  // IPCRPC_TESTS_TESTING_IPC_LEAK_CHECK_H_
