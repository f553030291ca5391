// The test_server process of the end-to-end tests, started by a test.
//
// ServerProcess starts tests/e2e/test_server (a data dependency of
// :server_process) listening on a unix socket in a private temp directory
// (or on a given address), and returns once it prints READY; its destructor
// kills it. Failures to start are reported as gtest failures. Not
// thread-safe: one test thread uses it. It never signals anything but the
// server it started (no kill(-1, ...) once the server is gone).
//
// Also a few raw-socket helpers for tests that speak the wire protocol byte
// by byte to that process (docs/PROTOCOL.md) and watch its memory.
//
// Example:
//   ServerProcess server({"--grace_ms=100"});
//   auto channel = CreateChannel(server.address());

#ifndef IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
#define IPCRPC_TESTS_E2E_SERVER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
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
  // SIGKILL and wait; nothing if the server is not running. (The destructor
  // also kills, and then sweeps the objects of negotiations the server had
  // recorded, as the next server would.)
  void Kill();
  // Kills the server and starts a new one at the same address.
  void Restart();

  // The process's resident set size (VmRSS of /proc/PID/status), bytes.
  int64_t RssBytes() const;
  // The process's threads (Threads: of /proc/PID/status).
  int Threads() const;

  // Sends SIGTERM (test_server shuts down with its --grace_ms drain
  // deadline) and waits up to `limit_seconds` for the process to exit.
  // false if it is still running then (the destructor kills it).
  bool TerminateWithin(int limit_seconds);

 private:
  void Start();

  testing::ScopedTempDir dir_;
  const std::vector<std::string> extra_args_;
  const std::string config_;
  std::string address_;
  pid_t pid_ = -1;
};

// A raw client socket connected to `socket_path`; -1 on failure.
int ConnectRaw(const std::string& socket_path);
// Writes all of `bytes`; false on error.
bool SendAll(int fd, const std::string& bytes);
// Reads one whole frame (header + payload); what arrived if the socket ends
// (or nothing comes for 10 s).
std::string ReceiveFrame(int fd);
// Waits until the peer has read every byte written to `fd` (SIOCOUTQ is 0):
// after this, the server has consumed what was sent. false if it has not
// within 30 s.
bool WaitUntilConsumed(int fd);

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
