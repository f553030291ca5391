// The test_server process of the end-to-end tests, started by a test.
//
// ServerProcess starts tests/e2e/test_server (a data dependency of
// :server_process) listening on a unix socket in a private temp directory
// (or on a given address), and returns once it prints READY; its destructor
// kills it. Failures to start are reported as gtest failures. Not
// thread-safe: one test thread uses it. It never signals anything but the
// server it started (no kill(-1, ...) once the server is gone).
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

// Every transport of this build ("auto" included).
std::vector<std::string> TransportsUnderTest();

class ServerProcess {
 public:
  // `extra_args` go to test_server; `config` (text format), if given,
  // reaches the server through IPCRPC_CONFIG; `address`, if given, replaces
  // the socket in the private directory (e.g. an abstract "unix:@name").
  explicit ServerProcess(std::vector<std::string> extra_args = {}, std::string config = "",
                         std::string address = "");
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }  // "unix:/tmp/.../server.sock"
  pid_t pid() const { return pid_; }
  std::string socket_path() const { return dir_.File("server.sock"); }
  // The private directory the socket (and config file) live in.
  const std::string& dir() const { return dir_.path(); }

  // SIGTERM (graceful shutdown) and wait for the exit status; -1 if the
  // server is not running.
  int Terminate();
  // SIGKILL and wait; nothing if the server is not running.
  void Kill();
  // Kills the server and starts a new one at the same address.
  void Restart();

 private:
  void Start();

  testing::ScopedTempDir dir_;
  const std::vector<std::string> extra_args_;
  const std::string config_;
  std::string address_;
  pid_t pid_ = -1;
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
