// A process started by a bridge test: the gateway, the plain gRPC server, a
// test server. Start() returns once the process printed "READY" on stdout
// and keeps the lines before it ("GRPC_PORT=N"); the destructor sends
// SIGTERM, waits up to 5 s, then SIGKILLs — only the process it started.
// One test thread uses it.
//
// Example:
//   ChildProcess server({RunfilePath("tests/bridge/plain_grpc_server")});
//   ASSERT_TRUE(server.Start());
//   std::string port = server.Value("GRPC_PORT");

#ifndef IPCRPC_TESTS_BRIDGE_CHILD_PROCESS_H_
#define IPCRPC_TESTS_BRIDGE_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ipcrpc::test {

// $TEST_SRCDIR/$TEST_WORKSPACE/`path`.
std::string RunfilePath(const std::string& path);

class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv) : argv_(std::move(argv)) {}
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // false (with what was printed) if it exited or closed stdout before READY.
  bool Start();
  // "N" of a "NAME=N" line printed before READY (or "READY NAME=N"); "" if none.
  std::string Value(const std::string& name) const;
  const std::string& output() const { return output_; }
  pid_t pid() const { return pid_; }
  // VmRSS, bytes; -1 if unknown.
  int64_t RssBytes() const;
  // SIGTERM and wait; the exit status as waitpid gives it, -1 if not running.
  int Stop();

 private:
  std::vector<std::string> argv_;
  std::string output_;
  pid_t pid_ = -1;
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_BRIDGE_CHILD_PROCESS_H_
