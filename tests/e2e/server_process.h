// The test_server process of the end-to-end tests, started by a test.
//
// ServerProcess starts tests/e2e/test_server (a data dependency of the test)
// listening on a unix socket in a private temp directory, and returns once
// it prints READY; its destructor kills it. Failures to start are reported
// as gtest failures. Not thread-safe: one test thread uses it.
//
// Example:
//   ServerProcess server({"--grace_ms=100"});
//   auto channel = CreateChannel(server.address());

#ifndef IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
#define IPCRPC_TESTS_E2E_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace ipcrpc::test {

// The test_server binary in the test's runfiles.
std::string TestServerPath();

class ServerProcess {
 public:
  // `extra_args` go to test_server; `config` (text format), if given,
  // reaches the server through IPCRPC_CONFIG.
  explicit ServerProcess(std::vector<std::string> extra_args = {}, std::string config = "");
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }  // "unix:/tmp/.../server.sock"
  pid_t pid() const { return pid_; }
  std::string socket_path() const { return dir_.File("server.sock"); }

  // SIGTERM (graceful shutdown) and wait for the exit status.
  int Terminate();
  void Kill();

 private:
  testing::ScopedTempDir dir_;
  std::string address_;
  pid_t pid_ = -1;
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
