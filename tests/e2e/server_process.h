// ipcrpc test support: a test_server process listening on a unix socket.
//
// Starts //tests/e2e:test_server (a data dependency of the test) in a private
// temp directory, waits for its "READY" line and kills it when destroyed.
// Also a few raw-socket helpers for tests that speak the wire protocol byte
// by byte to that process (docs/PROTOCOL.md) and watch its memory.
//
// Thread-safety: none; one test thread uses it.

#ifndef IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
#define IPCRPC_TESTS_E2E_SERVER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace ipcrpc::test {

class ServerProcess {
 public:
  // `config` (text format), if given, reaches the server through IPCRPC_CONFIG.
  explicit ServerProcess(std::vector<std::string> extra_args = {}, std::string config = "");
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }  // "unix:/tmp/.../server.sock"
  std::string socket_path() const { return dir_.File("server.sock"); }
  pid_t pid() const { return pid_; }

  // The process's resident set size (VmRSS of /proc/PID/status), bytes.
  int64_t RssBytes() const;

  // Sends SIGTERM (test_server shuts down with its --grace_ms drain
  // deadline) and waits up to `limit` for the process to exit. false if it
  // is still running then (it is killed).
  bool TerminateWithin(int limit_seconds);

 private:
  testing::ScopedTempDir dir_;
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
