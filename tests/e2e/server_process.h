// Test support: a test_server process (tests/e2e/test_server.cc) listening
// on a unix socket in a private temporary directory, for tests that need a
// real server in another process. Not thread-safe; one owner.

#ifndef IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
#define IPCRPC_TESTS_E2E_SERVER_PROCESS_H_

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "connect/address.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace ipcrpc::test {

inline std::string TestServerPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "ipcrpc",
                      "/tests/e2e/test_server");
}

// Every transport of this build ("auto" included).
inline std::vector<std::string> TransportsUnderTest() {
  std::vector<std::string> names;
  for (const std::string& name : KnownTransports()) {
    if (MakeConnector(name + ":/probe").ok()) names.push_back(name);
  }
  return names;
}

// A test_server process listening on a socket in a private temp directory.
class ServerProcess {
 public:
  // `config` (text format), if given, reaches the server through IPCRPC_CONFIG.
  // `address`, if given, replaces the socket in the private directory (e.g.
  // an abstract "unix:@name").
  explicit ServerProcess(std::vector<std::string> extra_args = {}, std::string config = "",
                         std::string address = "")
      : extra_args_(std::move(extra_args)), config_(std::move(config)) {
    address_ = address.empty() ? "unix:" + dir_.File("server.sock") : std::move(address);
    Start();
  }
  // Kills the server (SIGKILL) and starts a new one at the same address.
  void Restart() {
    Kill();
    Start();
  }

 private:
  void Start() {
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
    if (!config_.empty()) {
      std::string path = dir_.File("server.textproto");
      FILE* f = std::fopen(path.c_str(), "w");
      std::fputs(config_.c_str(), f);
      std::fclose(f);
      env_storage.push_back("IPCRPC_CONFIG=" + path);
    }
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {TestServerPath(), address_};
    for (auto& a : extra_args_) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) std::abort();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
    std::string line;
    char c;
    while (line.find('\n') == std::string::npos && read(out[0], &c, 1) == 1) line += c;
    close(out[0]);
    EXPECT_EQ(line, "READY\n") << "test_server did not start";
  }

 public:
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  std::string socket_path() const { return dir_.File("server.sock"); }
  // The private directory the socket (and config file) live in.
  const std::string& dir() const { return dir_.path(); }

  // SIGTERM (graceful shutdown) and wait for the exit status.
  // Never kill(-1, ...) (every process we may signal): only a server we started.
  int Terminate() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  testing::ScopedTempDir dir_;
  const std::vector<std::string> extra_args_;
  const std::string config_;
  std::string address_;
  pid_t pid_ = -1;
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SERVER_PROCESS_H_
