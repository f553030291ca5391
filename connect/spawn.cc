#include "connect/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "transports/unix_socket.h"

extern char** environ;

namespace ipcrpc {

absl::StatusOr<WorkerProcess> WorkerProcess::Spawn(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("Spawn: argv is empty");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  ScopedFd parent_end(sv[0]), child_end(sv[1]);
  if (child_end.get() == kInheritedFd) {
    // dup2(fd, fd) would keep FD_CLOEXEC; move it elsewhere first.
    ScopedFd moved(::fcntl(child_end.get(), F_DUPFD_CLOEXEC, kInheritedFd + 1));
    if (!moved.valid()) return ErrnoStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
    child_end = std::move(moved);
  }

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kInheritedFdEnv, std::strlen(kInheritedFdEnv)) != 0) {
      env_storage.emplace_back(*e);
    }
  }
  env_storage.push_back(absl::StrCat(kInheritedFdEnv, "=", kInheritedFd));
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto a different number clears FD_CLOEXEC on the copy.
  posix_spawn_file_actions_adddup2(&actions, child_end.get(), kInheritedFd);
  pid_t pid;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(),
                         envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return ErrnoStatus(rc, absl::StrCat("spawning ", argv[0]));
  child_end.reset();

  std::string name = absl::StrCat("socketpair:worker-pid=", pid);
  PeerCredentials peer;  // the child runs with our uid/gid unless setuid
  peer.pid = pid;
  peer.uid = ::getuid();
  peer.gid = ::getgid();
  auto transport = UnixSocketTransport::Create(std::move(parent_end), name, peer);
  if (!transport.ok()) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return transport.status();
  }
  return WorkerProcess(pid, std::move(*transport));
}

WorkerProcess::WorkerProcess(WorkerProcess&& other) noexcept
    : pid_(other.pid_), socket_(std::move(other.socket_)) {
  other.pid_ = -1;
}

WorkerProcess& WorkerProcess::operator=(WorkerProcess&& other) noexcept {
  if (this != &other) {
    this->~WorkerProcess();
    pid_ = other.pid_;
    socket_ = std::move(other.socket_);
    other.pid_ = -1;
  }
  return *this;
}

WorkerProcess::~WorkerProcess() {
  socket_.reset();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

absl::StatusOr<int> WorkerProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("worker already reaped");
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Microseconds(100);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0 && errno != EINTR) return ErrnoStatus(errno, "waitpid");
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("worker ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
}

absl::StatusOr<std::unique_ptr<Transport>> TakeInheritedTransport() {
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketTransport> socket, TakeInheritedSocket());
  return std::unique_ptr<Transport>(std::move(socket));
}

absl::StatusOr<std::unique_ptr<UnixSocketTransport>> TakeInheritedSocket() {
  const char* value = ::getenv(kInheritedFdEnv);
  int fd;
  if (value == nullptr || !absl::SimpleAtoi(value, &fd) || fd < 0) {
    return absl::NotFoundError(absl::StrCat(
        kInheritedFdEnv, " is not set: this process was not spawned as an ipcrpc worker"));
  }
  ::unsetenv(kInheritedFdEnv);
  int type = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
    return absl::FailedPreconditionError(absl::StrCat(
        "inherited fd ", fd, " is not a stream socket"));
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return UnixSocketTransport::Create(ScopedFd(fd), absl::StrCat("socketpair:inherited-fd=", fd));
}

}  // namespace ipcrpc
