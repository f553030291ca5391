#include "tests/bridge/child_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace ipcrpc::test {

std::string RunfilePath(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "ipcrpc", "/", path);
}

bool ChildProcess::Start() {
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe(out) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    pid_ = -1;
    close(out[0]);
    output_ = absl::StrCat("cannot start ", argv_[0]);
    return false;
  }
  std::string line;
  char c;
  bool ready = false;
  while (!ready && read(out[0], &c, 1) == 1) {
    output_ += c;
    if (c == '\n') {
      ready = line.rfind("READY", 0) == 0;
      line.clear();
    } else {
      line += c;
    }
  }
  close(out[0]);  // later output goes nowhere (writes fail with EPIPE, ignored)
  return ready;
}

std::string ChildProcess::Value(const std::string& name) const {
  std::istringstream lines(output_);
  std::string word;
  while (lines >> word) {
    if (word.rfind(name + "=", 0) == 0) return word.substr(name.size() + 1);
  }
  return "";
}

int64_t ChildProcess::RssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1) return kb * 1024;
  }
  return -1;
}

int ChildProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > give_up) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  pid_ = -1;
  return status;
}

ChildProcess::~ChildProcess() { Stop(); }

}  // namespace ipcrpc::test
