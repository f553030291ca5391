#include "transports/fifo/fifo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/fd_util.h"
#include "base/status_macros.h"
#include "transports/control_channel.h"

namespace ipcrpc {
namespace {

constexpr int kMaxIovecs = 64;
// How often Write asks the control socket whether the peer is still there.
constexpr std::chrono::milliseconds kControlCheckInterval(1);
constexpr char kClientToServerName[] = "c2s";
constexpr char kServerToClientName[] = "s2c";

// Like ErrnoStatus, but a path that does not exist is NOT_FOUND (a missing
// directory or FIFO is a set-up error, not a transient one).
absl::Status PathErrorStatus(int error_number, absl::string_view what) {
  absl::Status s = ErrnoStatus(error_number, what);
  if (error_number == ENOENT) return absl::NotFoundError(s.message());
  return s;
}

const char* FileTypeName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  return "of an unknown type";
}

// Writing to a FIFO whose reader has gone fails with EPIPE *and* raises
// SIGPIPE, whose default action kills the process. A FIFO has no
// MSG_NOSIGNAL, and changing the process-wide disposition would surprise the
// application, so for the duration of one Write the calling thread blocks
// SIGPIPE. The kernel directs the SIGPIPE of a failed write at the writing
// thread, so it stays pending on this thread, and ConsumeRaised() takes it
// with a zero-timeout sigtimedwait() before the old mask comes back. If a
// SIGPIPE was already pending when the block began, ours merged with it
// (standard signals do not queue) and that one belongs to someone else: it is
// left pending. (The technique libpq uses, pq_block_sigpipe.)
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_mask_);
    sigset_t pending;
    sigemptyset(&pending);
    already_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  ~ScopedSigpipeBlock() { pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr); }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

  // Call after a write failed with EPIPE.
  void ConsumeRaised() {
    if (already_pending_) return;
    const timespec zero = {0, 0};
    while (::sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t sigpipe_;
  sigset_t old_mask_;
  bool already_pending_ = false;
};

// ---------------------------------------------------------------------------
// FifoTransport: the data path, the same on both sides.

class FifoTransport final : public Transport {
 public:
  // Takes the two FIFO ends (non-blocking) and the control channel.
  static absl::StatusOr<std::unique_ptr<Transport>> Create(
      ScopedFd read_fifo, ScopedFd write_fifo, std::unique_ptr<ControlChannel> control);

  absl::Status Write(absl::Span<const absl::string_view> chunks,
                     absl::Time deadline) override;
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override;
  void Interrupt() override { SignalEventFd(wake_.get()); }
  void Shutdown() override;
  PeerCredentials peer() const override { return control_->peer(); }
  // The control channel knows (a zero-timeout poll of the control socket).
  bool PeerGone() override { return control_->peer_lost() || !control_->CheckNow().ok(); }
  std::string description() const override { return description_; }

 private:
  FifoTransport(ScopedFd read_fifo, ScopedFd write_fifo,
                std::unique_ptr<ControlChannel> control, ScopedFd wake)
      : read_fifo_(std::move(read_fifo)),
        write_fifo_(std::move(write_fifo)),
        control_(std::move(control)),
        wake_(std::move(wake)),
        description_(control_->description()) {}

  // UNAVAILABLE once Shutdown() was called or the peer is known to be gone.
  absl::Status CheckOpen() const;
  // Records that the peer is gone (seen on a FIFO) and says so.
  absl::Status PeerClosed();
  // Interprets what poll() reported on the control socket (the liveness
  // rule of transports/control_channel.h); OK means the wake-up was spurious.
  absl::Status CheckControl(short revents);
  // Waits until the write FIFO has room (or its reader is gone), the control
  // socket reports the end, or `deadline` passes.
  absl::Status WaitWritable(absl::Time deadline);

  ScopedFd read_fifo_;
  ScopedFd write_fifo_;
  // The unix socket the connection started on (liveness only); polled in
  // this transport's own poll sets, with its doorbell (Shutdown()).
  const std::unique_ptr<ControlChannel> control_;
  ScopedFd wake_;  // eventfd: Interrupt() makes it readable
  const std::string description_;
  // When Write last asked the control socket whether the peer is still
  // there (steady clock, ns); asked at most once per kControlCheckInterval.
  std::atomic<int64_t> control_checked_ns_{INT64_MIN};
  // Read side only: the last read drained the FIFO, so the next one polls
  // first instead of paying for a read() that fails with EAGAIN.
  bool poll_before_read_ = false;
};

absl::StatusOr<std::unique_ptr<Transport>> FifoTransport::Create(
    ScopedFd read_fifo, ScopedFd write_fifo, std::unique_ptr<ControlChannel> control) {
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd wake, MakeEventFd());
  return std::unique_ptr<Transport>(new FifoTransport(std::move(read_fifo), std::move(write_fifo),
                                                     std::move(control), std::move(wake)));
}

absl::Status FifoTransport::CheckOpen() const {
  if (control_->is_shut_down()) {
    return absl::UnavailableError(absl::StrCat(description_, ": transport shut down"));
  }
  return control_->status();
}

absl::Status FifoTransport::PeerClosed() {
  control_->MarkPeerClosed();
  return CheckOpen();  // "shut down" wins if that is why the FIFO closed
}

absl::Status FifoTransport::CheckControl(short revents) {
  IPCRPC_RETURN_IF_ERROR(CheckOpen());
  IPCRPC_RETURN_IF_ERROR(control_->OnPollEvents(revents));
  return CheckOpen();
}

absl::Status FifoTransport::WaitWritable(absl::Time deadline) {
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckOpen());
    pollfd fds[3] = {{write_fifo_.get(), POLLOUT, 0},
                     {control_->fd(), ControlChannel::kPollEvents, 0},
                     {control_->doorbell_fd(), POLLIN, 0}};  // Shutdown()
    int n = ::poll(fds, 3, PollTimeoutMs(deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat(description_, ": poll"));
    }
    if (n == 0) {
      if (absl::Now() < deadline) continue;  // poll rounds; never report early
      return absl::DeadlineExceededError(absl::StrCat(description_, ": deadline exceeded"));
    }
    // Writable, or POLLERR (the reader is gone: writev will say EPIPE).
    if (fds[0].revents != 0) return absl::OkStatus();
    IPCRPC_RETURN_IF_ERROR(CheckControl(fds[1].revents));  // and the doorbell: CheckOpen
  }
}

absl::Status FifoTransport::Write(absl::Span<const absl::string_view> chunks,
                                  absl::Time deadline) {
  IPCRPC_RETURN_IF_ERROR(CheckOpen());
  // A peer that shut down but still holds its FIFO ends would let our bytes
  // pile up unread; its control socket tells (one poll, no waiting). Asked
  // at most once per kControlCheckInterval, so a stream of small writes does
  // not pay a syscall each; a peer that goes away in between is still seen
  // by the next check, a full FIFO (WaitWritable) or our reads.
  int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  int64_t last_ns = control_checked_ns_.load(std::memory_order_relaxed);
  if (last_ns == INT64_MIN ||
      now_ns - last_ns >= std::chrono::nanoseconds(kControlCheckInterval).count()) {
    IPCRPC_RETURN_IF_ERROR(control_->CheckNow());
    control_checked_ns_.store(now_ns, std::memory_order_relaxed);
  }

  absl::InlinedVector<iovec, 4> iov;
  for (absl::string_view c : chunks) {
    if (!c.empty()) iov.push_back({const_cast<char*>(c.data()), c.size()});
  }
  if (iov.empty()) return absl::OkStatus();

  ScopedSigpipeBlock no_sigpipe;
  size_t first = 0;
  while (first < iov.size()) {
    ssize_t n = ::writev(write_fifo_.get(), &iov[first],
                         static_cast<int>(std::min<size_t>(iov.size() - first, kMaxIovecs)));
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        IPCRPC_RETURN_IF_ERROR(WaitWritable(deadline));
        continue;
      }
      if (err == EPIPE) {
        no_sigpipe.ConsumeRaised();
        return PeerClosed();
      }
      return ErrnoStatus(err, absl::StrCat(description_, ": write"));
    }
    size_t done = static_cast<size_t>(n);
    while (first < iov.size() && done >= iov[first].iov_len) {
      done -= iov[first].iov_len;
      ++first;
    }
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> FifoTransport::Read(absl::Span<char> buffer, absl::Time deadline) {
  if (buffer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": empty read buffer"));
  }
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckOpen());
    ssize_t n = -1;
    errno = EAGAIN;
    if (!poll_before_read_) n = ::read(read_fifo_.get(), buffer.data(), buffer.size());
    poll_before_read_ = false;
    if (n > 0) {
      poll_before_read_ = static_cast<size_t>(n) < buffer.size();
      return static_cast<size_t>(n);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat(description_, ": read"));
    }
    // n == 0 means end-of-file -- or, on the client before the server's
    // Complete(), that no writer has opened the FIFO yet: Linux's read()
    // returns 0 for both. poll() tells them apart: it reports POLLHUP only
    // once a writer has come and gone, and keeps waiting while none ever did.
    pollfd fds[4] = {{read_fifo_.get(), POLLIN, 0},
                     {wake_.get(), POLLIN, 0},
                     {control_->fd(), ControlChannel::kPollEvents, 0},
                     {control_->doorbell_fd(), POLLIN, 0}};  // Shutdown()
    int ready = ::poll(fds, 4, PollTimeoutMs(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat(description_, ": poll"));
    }
    if (ready == 0) {
      if (absl::Now() < deadline) continue;  // poll rounds; never report early
      return absl::DeadlineExceededError(absl::StrCat(description_, ": deadline exceeded"));
    }
    if (fds[3].revents & POLLIN) continue;  // shut down: CheckOpen says so
    if (fds[1].revents & POLLIN) {
      DrainEventFd(wake_.get());
      return absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
    }
    // Bytes first: what the peer wrote before it went is still delivered.
    if (fds[0].revents & POLLIN) continue;
    if (fds[0].revents & (POLLHUP | POLLERR)) return PeerClosed();
    IPCRPC_RETURN_IF_ERROR(CheckControl(fds[2].revents));
  }
}

void FifoTransport::Shutdown() {
  // Tells the peer (its poll sees end-of-file on the control socket) and
  // wakes our own blocked Read/Write (their poll sees the channel's
  // doorbell). The FIFO fds stay open until destruction: closing them here
  // would race with a thread inside read()/writev() on the same fd number.
  control_->Shutdown();
}

// ---------------------------------------------------------------------------
// The server's directory and FIFOs, removed when this object is destroyed.

class FifoFiles {
 public:
  explicit FifoFiles(std::string dir)
      : dir_(std::move(dir)),
        client_to_server_(absl::StrCat(dir_, "/", kClientToServerName)),
        server_to_client_(absl::StrCat(dir_, "/", kServerToClientName)) {}
  ~FifoFiles() { Remove(); }
  FifoFiles(const FifoFiles&) = delete;
  FifoFiles& operator=(const FifoFiles&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& client_to_server() const { return client_to_server_; }
  const std::string& server_to_client() const { return server_to_client_; }

  // Unlinks both FIFOs (whichever exist) and removes the directory. Open
  // ends keep working: a FIFO, once open, needs no name.
  void Remove() {
    if (removed_) return;
    removed_ = true;
    ::unlink(client_to_server_.c_str());
    ::unlink(server_to_client_.c_str());
    ::rmdir(dir_.c_str());
  }

 private:
  std::string dir_;
  std::string client_to_server_;
  std::string server_to_client_;
  bool removed_ = false;
};

absl::Status MakeFifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0600) < 0) return PathErrorStatus(errno, "fifo: mkfifo " + path);
  // The umask may have taken bits away; the client needs exactly 0600.
  if (::chmod(path.c_str(), 0600) < 0) return ErrnoStatus(errno, "fifo: chmod " + path);
  return absl::OkStatus();
}

class PendingFifo final : public PendingTransport {
 public:
  PendingFifo(std::unique_ptr<FifoFiles> files, ScopedFd read_fifo)
      : files_(std::move(files)), read_fifo_(std::move(read_fifo)) {}

  void FillOffer(wire::TransportOffer* offer, std::vector<int>* /*fds*/) override {
    offer->set_transport(kFifoTransportName);
    wire::FifoParams* params = offer->mutable_fifo();
    params->set_client_to_server_path(files_->client_to_server());
    params->set_server_to_client_path(files_->server_to_client());
  }

  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                      absl::Time /*deadline*/) override {
    if (completed_) {
      return absl::FailedPreconditionError("fifo: Complete() was already called");
    }
    completed_ = true;
    IPCRPC_ASSIGN_OR_RETURN(
        std::unique_ptr<ControlChannel> control,
        ControlChannel::Open(std::move(control_socket),
                             absl::StrCat("fifo:", files_->dir(), " (server)")));
    // Opening is non-blocking, so the deadline is not needed. Whatever the
    // outcome, the names go: once both ends are open they serve no purpose,
    // and after a failure nothing may stay on disk.
    ScopedFd write_fifo(::open(files_->server_to_client().c_str(),
                               O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
    int open_error = errno;
    files_->Remove();
    if (!write_fifo.valid()) {
      if (open_error == ENXIO) {
        return absl::FailedPreconditionError(absl::StrCat(
            "fifo: ", files_->server_to_client(),
            " has no reader: the client did not open it (its AttachFifo must succeed before "
            "TRANSPORT_ACK{ok: true})"));
      }
      return PathErrorStatus(open_error, "fifo: open " + files_->server_to_client());
    }
    return FifoTransport::Create(std::move(read_fifo_), std::move(write_fifo),
                                 std::move(control));
  }

 private:
  std::unique_ptr<FifoFiles> files_;
  ScopedFd read_fifo_;  // the server's end of c2s, open since PrepareFifo
  bool completed_ = false;
};

// ---------------------------------------------------------------------------
// Client-side checks of an offered path.

// The directory holding an offered FIFO must be a real directory of the
// server's user that nobody else can write to, or the FIFO could be swapped.
absl::Status CheckOfferedDirectory(const std::string& dir, uid_t server_uid) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) return PathErrorStatus(errno, "fifo: lstat " + dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fifo: offered directory ", dir, " is ", FileTypeName(st.st_mode), ", not a directory"));
  }
  if (st.st_uid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat("fifo: offered directory ", dir,
                                                    " is owned by uid ", st.st_uid,
                                                    ", but the server runs as uid ", server_uid));
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "fifo: offered directory ", dir, " is writable by other users (mode ",
        absl::StrFormat("%04o", st.st_mode & 07777), "); refusing to use it"));
  }
  return absl::OkStatus();
}

absl::Status CheckOfferedFifo(const std::string& path, const struct stat& st,
                              uid_t server_uid) {
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("fifo: offered path ", path, " is a symbolic link; refusing to follow it"));
  }
  if (!S_ISFIFO(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("fifo: offered path ", path, " is ",
                                                      FileTypeName(st.st_mode),
                                                      ", not a FIFO"));
  }
  if (st.st_uid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat("fifo: offered FIFO ", path,
                                                    " is owned by uid ", st.st_uid,
                                                    ", but the server runs as uid ", server_uid));
  }
  return absl::OkStatus();
}

// Checks `path` and opens it with `flags` (O_RDONLY or O_WRONLY). The checks
// run before the open (so nothing that is not a FIFO is ever opened) and on
// the open file again (so a swap in between is caught).
absl::StatusOr<ScopedFd> OpenOfferedFifo(const std::string& path, int flags, uid_t server_uid) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("fifo: offered path \"", path, "\" is not absolute"));
  }
  std::string dir = path.substr(0, path.rfind('/'));
  IPCRPC_RETURN_IF_ERROR(CheckOfferedDirectory(dir.empty() ? "/" : dir, server_uid));
  struct stat before;
  if (::lstat(path.c_str(), &before) < 0) {
    return PathErrorStatus(errno, "fifo: offered path " + path);
  }
  IPCRPC_RETURN_IF_ERROR(CheckOfferedFifo(path, before, server_uid));
  ScopedFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENXIO) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fifo: ", path, " has no reader: the server must open its end before offering it"));
    }
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat("fifo: offered path ", path, " is a symbolic link; refusing to follow it"));
    }
    return PathErrorStatus(errno, "fifo: open " + path);
  }
  struct stat after;
  if (::fstat(fd.get(), &after) < 0) return ErrnoStatus(errno, "fifo: fstat " + path);
  IPCRPC_RETURN_IF_ERROR(CheckOfferedFifo(path, after, server_uid));
  if (after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
    return absl::FailedPreconditionError(
        absl::StrCat("fifo: offered FIFO ", path, " was replaced while being opened"));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareFifo(const FifoOptions& options) {
  if (options.parent_dir.empty()) {
    return absl::InvalidArgumentError("fifo: FifoOptions.parent_dir is empty");
  }
  std::string dir = absl::StrCat(options.parent_dir, "/ipcrpc-fifo-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    return PathErrorStatus(errno, "fifo: mkdtemp in " + options.parent_dir);
  }
  // From here on every return removes whatever exists.
  auto files = std::make_unique<FifoFiles>(dir);
  if (::chmod(dir.c_str(), 0700) < 0) return ErrnoStatus(errno, "fifo: chmod " + dir);
  IPCRPC_RETURN_IF_ERROR(MakeFifo(files->client_to_server()));
  IPCRPC_RETURN_IF_ERROR(MakeFifo(files->server_to_client()));
  // Opening for reading with O_NONBLOCK succeeds without a writer; it is what
  // lets the client open its write end without blocking.
  ScopedFd read_fifo(
      ::open(files->client_to_server().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
  if (!read_fifo.valid()) {
    return PathErrorStatus(errno, "fifo: open " + files->client_to_server());
  }
  return std::unique_ptr<PendingTransport>(
      new PendingFifo(std::move(files), std::move(read_fifo)));
}

absl::StatusOr<std::unique_ptr<Transport>> AttachFifo(const wire::TransportOffer& offer,
                                                      std::vector<ScopedFd> fds,
                                                      ScopedFd control_socket,
                                                      const FifoOptions& /*options*/) {
  if (offer.transport() != kFifoTransportName) {
    return absl::InvalidArgumentError(absl::StrCat("fifo: the offer is for transport \"",
                                                   offer.transport(), "\", not \"fifo\""));
  }
  if (!fds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fifo: a fifo offer carries no file descriptors, but ", fds.size(), " arrived"));
  }
  const wire::FifoParams& params = offer.fifo();
  if (params.client_to_server_path() == params.server_to_client_path()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fifo: the offer names the same path for both directions: \"",
        params.client_to_server_path(), "\""));
  }
  // The FIFOs must belong to the process at the other end of the socket.
  const std::string& path = params.client_to_server_path();
  IPCRPC_ASSIGN_OR_RETURN(
      std::unique_ptr<ControlChannel> control,
      ControlChannel::Open(std::move(control_socket),
                           absl::StrCat("fifo:", path.substr(0, path.rfind('/')), " (client)")));
  const PeerCredentials& server = control->peer();
  // Write end first: it is the one that proves the server's reader is open.
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd write_fifo,
                          OpenOfferedFifo(params.client_to_server_path(), O_WRONLY, server.uid));
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd read_fifo,
                          OpenOfferedFifo(params.server_to_client_path(), O_RDONLY, server.uid));
  return FifoTransport::Create(std::move(read_fifo), std::move(write_fifo), std::move(control));
}

}  // namespace ipcrpc
