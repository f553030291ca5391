#include "tests/e2e/server_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connect/address.h"
#include "gtest/gtest.h"

extern char** environ;

namespace ipcrpc::test {

std::string TestServerPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "ipcrpc",
                      "/tests/e2e/test_server");
}

std::vector<std::string> TransportsUnderTest() {
  std::vector<std::string> names;
  for (const std::string& name : KnownTransports()) {
    if (MakeConnector(name + ":/probe").ok()) names.push_back(name);
  }
  return names;
}

ServerProcess::ServerProcess(std::vector<std::string> extra_args, std::string config,
                             std::string address)
    : extra_args_(std::move(extra_args)), config_(std::move(config)) {
  address_ = address.empty() ? "unix:" + dir_.File("server.sock") : std::move(address);
  Start();
}

void ServerProcess::Start() {
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
  for (const auto& a : extra_args_) args.push_back(a);
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
  if (rc != 0) pid_ = -1;
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos && read(out[0], &c, 1) == 1) line += c;
  close(out[0]);
  EXPECT_EQ(line, "READY\n") << "test_server did not start";
}

ServerProcess::~ServerProcess() { Kill(); }

int ServerProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void ServerProcess::Restart() {
  Kill();
  Start();
}

}  // namespace ipcrpc::test
