#include "transports/unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>  // std::call_once
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/fd_util.h"
#include "base/status_macros.h"

namespace ipcrpc {
namespace {

absl::Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

// Parses "unix:PATH" / "unix-abstract:NAME" into sun_path bytes.
absl::StatusOr<std::string> SockaddrPath(absl::string_view address) {
  std::string path;
  if (absl::StartsWith(address, "unix:")) {
    path = std::string(address.substr(5));
    if (path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("address \"", address, "\" has an empty socket path"));
    }
  } else if (absl::StartsWith(address, "unix-abstract:")) {
    absl::string_view name = address.substr(14);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("address \"", address, "\" has an empty abstract name"));
    }
    path = std::string(1, '\0') + std::string(name);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", address, "\" is not a unix socket address (unix:PATH or unix-abstract:NAME)"));
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path in \"", address, "\" is ", path.size(),
                     " bytes; the limit is ", sizeof(sockaddr_un::sun_path) - 1));
  }
  return path;
}

socklen_t FillSockaddr(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                (path[0] == '\0' ? 0 : 1));
}

}  // namespace

// ---------------------------------------------------------------------------
// UnixSocketTransport

absl::StatusOr<std::unique_ptr<UnixSocketTransport>> UnixSocketTransport::Create(
    ScopedFd socket, std::string description) {
  // SO_PEERCRED fails only for something that is not a unix socket; then the
  // peer is unknown (pid 0, uid/gid -1), as documented for PeerCredentials.
  PeerCredentials peer = SocketPeerCredentials(socket.get()).value_or(PeerCredentials());
  return Create(std::move(socket), std::move(description), peer);
}

absl::StatusOr<std::unique_ptr<UnixSocketTransport>> UnixSocketTransport::Create(
    ScopedFd socket, std::string description, PeerCredentials peer) {
  IPCRPC_RETURN_IF_ERROR(SetNonBlocking(socket.get()));
  return std::unique_ptr<UnixSocketTransport>(
      new UnixSocketTransport(std::move(socket), std::move(description), peer));
}

UnixSocketTransport::UnixSocketTransport(ScopedFd socket, std::string description,
                                         PeerCredentials peer)
    : socket_(std::move(socket)), description_(std::move(description)), peer_(peer) {}

UnixSocketTransport::~UnixSocketTransport() = default;

namespace {

// Raised in the child of every fork(): an eventfd the forking thread made
// before is the parent's too, and a signal meant for one could be drained by
// the other.
std::atomic<uint64_t> g_forks{0};

// The calling thread's eventfd, made on first use (and again in a forked
// child) and closed when the thread ends: what a waiting read polls besides
// its socket.
absl::StatusOr<int> ThisThreadsWakeFd() {
  static std::once_flag watch_forks;
  std::call_once(watch_forks, [] {
    ::pthread_atfork(nullptr, nullptr, [] { g_forks.fetch_add(1, std::memory_order_relaxed); });
  });
  thread_local ScopedFd wake;
  thread_local uint64_t made_after_forks = 0;
  const uint64_t forks = g_forks.load(std::memory_order_relaxed);
  if (!wake.valid() || made_after_forks != forks) {
    IPCRPC_ASSIGN_OR_RETURN(wake, MakeEventFd());  // closes this process's copy of the old
    made_after_forks = forks;
  }
  return wake.get();
}

}  // namespace

absl::Status UnixSocketTransport::WaitReady(short events, absl::Time deadline,
                                            bool interruptible) {
  if (!interruptible || deadline == absl::InfinitePast()) {
    // A write, or a read that only takes what is there: nothing to wake,
    // though an interrupt already made is still honoured.
    if (interruptible && interrupted_.exchange(false)) {
      return absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
    }
    pollfd fd = {socket_.get(), events, 0};
    return PollUntil(absl::MakeSpan(&fd, 1), deadline, description_).status();
  }
  absl::StatusOr<int> made = ThisThreadsWakeFd();
  if (!made.ok()) {
    return absl::Status(made.status().code(),
                        absl::StrCat(description_, ": cannot wait for the socket without the "
                                                   "thread's wake-up eventfd: ",
                                     made.status().message()));
  }
  const int wake = *made;
  {
    internal::MutexLock lock(&wake_mu_);
    waiting_wake_fd_ = wake;
  }
  absl::Status status;
  for (;;) {
    if (interrupted_.exchange(false)) {
      status = absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
      break;
    }
    pollfd fds[2] = {{socket_.get(), events, 0}, {wake, POLLIN, 0}};
    status = PollUntil(absl::MakeSpan(fds, 2), deadline, description_).status();
    if (!status.ok() || (fds[1].revents & POLLIN) == 0) break;
    // Woken by Interrupt() (the flag says so), or by a signal left from an
    // earlier wait of this thread (then waiting goes on).
    DrainEventFd(wake);
  }
  {
    internal::MutexLock lock(&wake_mu_);
    waiting_wake_fd_ = -1;
  }
  return status;  // ready (or an error recv/send will report), or why not
}

absl::Status UnixSocketTransport::Write(absl::Span<const absl::string_view> chunks,
                                        absl::Time deadline) {
  return WriteWithFds(chunks, {}, deadline);
}

absl::Status UnixSocketTransport::WriteWithFds(
    absl::Span<const absl::string_view> chunks, absl::Span<const int> fds,
    absl::Time deadline) {
  if (fds.size() > static_cast<size_t>(kMaxFdsPerWrite)) {
    return absl::InvalidArgumentError(absl::StrCat(
        description_, ": ", fds.size(), " fds in one write; the limit is ",
        kMaxFdsPerWrite));
  }
  IovecCursor left(chunks);
  if (left.done() && fds.empty()) return absl::OkStatus();
  bool fds_sent = fds.empty();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerWrite)];
  while (!left.done()) {
    msghdr msg{};
    msg.msg_iov = left.iov();
    msg.msg_iovlen = static_cast<size_t>(left.iov_count());
    if (!fds_sent) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        IPCRPC_RETURN_IF_ERROR(WaitReady(POLLOUT, deadline, /*interruptible=*/false));
        continue;
      }
      return ErrnoStatus(errno, absl::StrCat(description_, ": send"));
    }
    fds_sent = true;
    left.Advance(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> UnixSocketTransport::Read(absl::Span<char> buffer,
                                                 absl::Time deadline) {
  return ReadWithFds(buffer, nullptr, deadline);
}

absl::StatusOr<size_t> UnixSocketTransport::ReadWithFds(
    absl::Span<char> buffer, std::vector<ScopedFd>* fds, absl::Time deadline) {
  FdBatch batch;
  IPCRPC_ASSIGN_OR_RETURN(size_t n, Receive(buffer, fds ? &batch : nullptr, deadline));
  if (batch.truncated) {
    return absl::ResourceExhaustedError(absl::StrCat(
        description_, ": file descriptors the peer sent could not all be received "
                      "(this process is out of descriptors); those that came were closed"));
  }
  for (ScopedFd& fd : batch.fds) fds->push_back(std::move(fd));
  return n;
}

absl::StatusOr<size_t> UnixSocketTransport::ReadWithFdBatches(
    absl::Span<char> buffer, std::vector<FdBatch>* batches, absl::Time deadline) {
  FdBatch batch;
  IPCRPC_ASSIGN_OR_RETURN(size_t n, Receive(buffer, &batch, deadline));
  // A stream recvmsg stops after the first piece that carried descriptors, so
  // one call yields at most one batch.
  if (!batch.fds.empty() || batch.truncated) batches->push_back(std::move(batch));
  return n;
}

absl::StatusOr<size_t> UnixSocketTransport::Receive(absl::Span<char> buffer, FdBatch* batch,
                                                    absl::Time deadline) {
  if (buffer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": empty read buffer"));
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerWrite)];
  read_drained_ = false;  // until a read says otherwise
  for (;;) {
    if (poll_before_read_) {
      poll_before_read_ = false;
      IPCRPC_RETURN_IF_ERROR(WaitReady(POLLIN, deadline, /*interruptible=*/true));
    }
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        IPCRPC_RETURN_IF_ERROR(WaitReady(POLLIN, deadline, /*interruptible=*/true));
        continue;
      }
      return ErrnoStatus(errno, absl::StrCat(description_, ": recv"));
    }
    // Take ownership of every received fd first, so none leaks on any path.
    FdBatch received;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          received.fds.emplace_back(fd);
        }
      }
    }
    // The buffer holds SCM_MAX_FD descriptors, so a truncation means the
    // kernel could not install them all here (EMFILE): it closed the rest.
    received.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
    const bool carried_fds = !received.fds.empty() || received.truncated;
    if (carried_fds) {
      if (batch == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            description_, ": peer sent file descriptors where none were expected"));
      }
      *batch = std::move(received);
    }
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat(description_, ": peer closed the connection"));
    }
    poll_before_read_ = static_cast<size_t>(n) < buffer.size();
    read_drained_ = poll_before_read_ && !carried_fds;
    return static_cast<size_t>(n);
  }
}

absl::StatusOr<ScopedFd> UnixSocketTransport::DuplicateSocket() const {
  ScopedFd copy(::fcntl(socket_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return ErrnoStatus(errno, absl::StrCat(description_, ": dup"));
  return copy;
}

void UnixSocketTransport::Interrupt() {
  internal::MutexLock lock(&wake_mu_);
  interrupted_.store(true);
  if (waiting_wake_fd_ >= 0) SignalEventFd(waiting_wake_fd_);
}

void UnixSocketTransport::Shutdown() { ::shutdown(socket_.get(), SHUT_RDWR); }

bool UnixSocketTransport::PeerGone() {
  pollfd p{socket_.get(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

absl::StatusOr<std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>>>
MakeSocketPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  ScopedFd a(sv[0]), b(sv[1]);
  std::string name_a = absl::StrCat("socketpair:fd=", a.get());
  std::string name_b = absl::StrCat("socketpair:fd=", b.get());
  IPCRPC_ASSIGN_OR_RETURN(auto ta, UnixSocketTransport::Create(std::move(a), name_a));
  IPCRPC_ASSIGN_OR_RETURN(auto tb, UnixSocketTransport::Create(std::move(b), name_b));
  return std::make_pair(std::unique_ptr<Transport>(std::move(ta)),
                        std::unique_ptr<Transport>(std::move(tb)));
}

// ---------------------------------------------------------------------------
// UnixSocketConnector

absl::StatusOr<std::unique_ptr<UnixSocketConnector>> UnixSocketConnector::Create(
    absl::string_view address) {
  IPCRPC_ASSIGN_OR_RETURN(std::string path, SockaddrPath(address));
  return std::unique_ptr<UnixSocketConnector>(
      new UnixSocketConnector(std::string(address), std::move(path)));
}

absl::StatusOr<std::unique_ptr<Transport>> UnixSocketConnector::Connect(
    absl::Time deadline) {
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketTransport> socket, ConnectSocket(deadline));
  return std::unique_ptr<Transport>(std::move(socket));
}

absl::StatusOr<std::unique_ptr<UnixSocketTransport>> UnixSocketConnector::ConnectSocket(
    absl::Time deadline) {
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  sockaddr_un addr;
  socklen_t len = FillSockaddr(path_, &addr);
  // A unix-socket connect either succeeds, fails at once, or (backlog full)
  // blocks; make it non-blocking so the deadline holds in that last case.
  IPCRPC_RETURN_IF_ERROR(SetNonBlocking(fd.get()));
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == EAGAIN) {
    // Backlog full: retry until the deadline.
    while (rc < 0 && errno == EAGAIN && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
      rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
    }
  }
  if (rc < 0) {
    int err = errno;
    if (err == EAGAIN) {
      return absl::DeadlineExceededError(
          absl::StrCat("connect to ", address_, ": server's backlog stayed full"));
    }
    absl::Status s = ErrnoStatus(err, absl::StrCat("connect to ", address_));
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::UnavailableError(
          absl::StrCat(s.message(), " (is the server running?)"));
    }
    return s;
  }
  return UnixSocketTransport::Create(std::move(fd), address_);
}

// ---------------------------------------------------------------------------
// UnixSocketListener

absl::StatusOr<std::unique_ptr<UnixSocketListener>> UnixSocketListener::Listen(
    absl::string_view address, mode_t mode) {
  IPCRPC_ASSIGN_OR_RETURN(std::string path, SockaddrPath(address));
  bool abstract = path[0] == '\0';
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  sockaddr_un addr;
  socklen_t len = FillSockaddr(path, &addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int err = errno;
    if (err != EADDRINUSE || abstract) {
      return ErrnoStatus(err, absl::StrCat("bind ", address));
    }
    // A socket file exists. If a server answers on it, it is in use; if
    // nobody does, it was left by a crashed server and is replaced.
    ScopedFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int rc;
    do {
      rc = ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), len);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      return absl::AlreadyExistsError(absl::StrCat(
          "bind ", address, ": another server is listening on this socket"));
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "bind ", address, ": the path exists and is not a socket; not removing it"));
    }
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("removing stale socket ", address));
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) {
      return ErrnoStatus(errno, absl::StrCat("bind ", address));
    }
  }
  ino_t inode = 0;
  if (!abstract) {
    // Before listen(): until then every connect() is refused, so nobody
    // connects under the mode the umask gave the file.
    if (::chmod(path.c_str(), mode) < 0) {
      absl::Status s = ErrnoStatus(errno, absl::StrCat("chmod ", address));
      ::unlink(path.c_str());
      return s;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) inode = st.st_ino;
  }
  if (::listen(fd.get(), 128) < 0) {
    absl::Status s = ErrnoStatus(errno, absl::StrCat("listen ", address));
    if (!abstract) ::unlink(path.c_str());
    return s;
  }
  absl::StatusOr<ScopedFd> wake = MakeEventFd();
  if (!wake.ok()) {
    if (!abstract) ::unlink(path.c_str());
    return wake.status();
  }
  return std::unique_ptr<UnixSocketListener>(new UnixSocketListener(
      std::string(address), std::move(path), std::move(fd), std::move(*wake), inode));
}

UnixSocketListener::UnixSocketListener(std::string address, std::string path,
                                       ScopedFd socket, ScopedFd wake, ino_t inode)
    : address_(std::move(address)),
      path_(std::move(path)),
      socket_(std::move(socket)),
      wake_(std::move(wake)),
      inode_(inode) {}

UnixSocketListener::~UnixSocketListener() { RemoveSocketFile(); }

void UnixSocketListener::RemoveSocketFile() {
  ino_t inode = inode_.exchange(0);
  if (inode == 0) return;
  // Remove the file only if it is still ours (a new server may have replaced it).
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && st.st_ino == inode) ::unlink(path_.c_str());
}

absl::StatusOr<std::unique_ptr<Transport>> UnixSocketListener::Accept() {
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketTransport> socket, AcceptSocket());
  return std::unique_ptr<Transport>(std::move(socket));
}

absl::StatusOr<std::unique_ptr<UnixSocketTransport>> UnixSocketListener::AcceptSocket() {
  for (;;) {
    int fd = ::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return UnixSocketTransport::Create(ScopedFd(fd), address_);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat("accept on ", address_));
    }
    pollfd fds[2] = {{socket_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
    if (n > 0 && (fds[1].revents & POLLIN)) {
      return absl::CancelledError(absl::StrCat("listener on ", address_, " closed"));
    }
  }
}

void UnixSocketListener::Close() {
  SignalEventFd(wake_.get());
  RemoveSocketFile();
}

}  // namespace ipcrpc
