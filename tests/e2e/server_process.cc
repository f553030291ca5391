#include "tests/e2e/server_process.h"

#include <linux/sockios.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "connect/pending_objects.h"
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

// A test that ends kills its server wherever it is — possibly in the middle
// of negotiating fifo or msgq with a client the test has already given up on
// — and then removes what such a negotiation recorded, as the next server to
// start would (connect/pending_objects.h). Objects nobody recorded are still
// left for the suite's leak check (tests/testing/ipc_leak_check.h) to find.
ServerProcess::~ServerProcess() {
  Kill();
  SweepStalePendingObjects();
}

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

int64_t ServerProcess::RssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1) return kb * 1024;
  }
  ADD_FAILURE() << "no VmRSS for pid " << pid_;
  return -1;
}

int ServerProcess::Threads() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    int threads = 0;
    if (std::sscanf(line.c_str(), "Threads: %d", &threads) == 1) return threads;
  }
  ADD_FAILURE() << "no Threads for pid " << pid_;
  return -1;
}

bool ServerProcess::TerminateWithin(int limit_seconds) {
  if (pid_ <= 0) return true;
  kill(pid_, SIGTERM);
  const absl::Time give_up = absl::Now() + absl::Seconds(limit_seconds);
  while (absl::Now() < give_up) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;  // the destructor kills it
}

int ConnectRaw(const std::string& socket_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  timeval timeout{10, 0};  // a test waiting for a reply that never comes fails, not hangs
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

namespace {
std::string ReceiveExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, &out[got], n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}
}  // namespace

std::string ReceiveFrame(int fd) {
  std::string header = ReceiveExactly(fd, 16);
  if (header.size() < 16) return header;
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<uint8_t>(header[8 + i])) << (8 * i);
  return header + ReceiveExactly(fd, len);
}

bool WaitUntilConsumed(int fd) {
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  for (;;) {
    int queued = 0;
    if (ioctl(fd, SIOCOUTQ, &queued) != 0) return false;
    if (queued == 0) return true;
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace ipcrpc::test
