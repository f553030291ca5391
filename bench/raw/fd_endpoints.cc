// Raw mechanisms on file descriptors: a unix-domain socketpair, two pipes,
// two FIFOs. Plain blocking write()/read() loops, nothing else.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/scoped_fd.h"
#include "bench/raw/cleanup.h"
#include "bench/raw/endpoint.h"

namespace raw {

namespace {

using ipcrpc::ScopedFd;

absl::Status ErrnoStatus(absl::string_view what) { return ipcrpc::ErrnoStatus(errno, what); }

class FdEndpoint final : public Endpoint {
 public:
  // `in` and `out` may be the same descriptor (a socket).
  FdEndpoint(ScopedFd in, ScopedFd out) : in_(std::move(in)), out_(std::move(out)) {}

  absl::Status Send(const char* data, size_t size) override {
    int fd = out_.valid() ? out_.get() : in_.get();
    while (size > 0) {
      ssize_t n = write(fd, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("write");
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> ReceiveSome(char* data, size_t capacity) override {
    for (;;) {
      ssize_t n = read(in_.get(), data, capacity);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("read");
      if (n == 0) return absl::UnavailableError("the peer closed its end");
      return static_cast<size_t>(n);
    }
  }

 private:
  ScopedFd in_;
  ScopedFd out_;  // invalid for a socket: in_ both ways
};

// socketpair(AF_UNIX, SOCK_STREAM) or two pipe()s, made before fork().
class AnonymousFdPair final : public EndpointPair {
 public:
  static absl::StatusOr<std::unique_ptr<EndpointPair>> Create(FdKind kind) {
    auto pair = std::unique_ptr<AnonymousFdPair>(new AnonymousFdPair());
    if (kind == FdKind::kSocketPair) {
      int fds[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        return ErrnoStatus("socketpair");
      }
      pair->client_in_ = ScopedFd(fds[0]);
      pair->server_in_ = ScopedFd(fds[1]);
    } else {
      int to_server[2], to_client[2];
      if (pipe2(to_server, O_CLOEXEC) != 0) return ErrnoStatus("pipe2");
      pair->server_in_ = ScopedFd(to_server[0]);
      pair->client_out_ = ScopedFd(to_server[1]);
      if (pipe2(to_client, O_CLOEXEC) != 0) return ErrnoStatus("pipe2");
      pair->client_in_ = ScopedFd(to_client[0]);
      pair->server_out_ = ScopedFd(to_client[1]);
    }
    return std::unique_ptr<EndpointPair>(std::move(pair));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ClientEnd() override {
    server_in_.reset();
    server_out_.reset();
    return std::unique_ptr<Endpoint>(
        std::make_unique<FdEndpoint>(std::move(client_in_), std::move(client_out_)));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ServerEnd() override {
    client_in_.reset();
    client_out_.reset();
    return std::unique_ptr<Endpoint>(
        std::make_unique<FdEndpoint>(std::move(server_in_), std::move(server_out_)));
  }

 private:
  AnonymousFdPair() = default;
  ScopedFd client_in_, client_out_, server_in_, server_out_;
};

// Two FIFOs in a private directory under /tmp. Each process opens them in an
// order that cannot deadlock; once the client's opens return, both sides
// have both open, and the client removes the files and the directory.
class FifoPair final : public EndpointPair {
 public:
  static absl::StatusOr<std::unique_ptr<EndpointPair>> Create() {
    auto pair = std::unique_ptr<FifoPair>(new FifoPair());
    char dir[] = "/tmp/ipcrpc-bench-fifo-XXXXXX";
    if (mkdtemp(dir) == nullptr) return ErrnoStatus("mkdtemp");
    pair->dir_ = dir;
    cleanup::AddPath(pair->dir_, /*is_directory=*/true);
    pair->to_server_ = pair->dir_ + "/to_server";
    pair->to_client_ = pair->dir_ + "/to_client";
    for (const std::string& path : {pair->to_server_, pair->to_client_}) {
      if (mkfifo(path.c_str(), 0600) != 0) return ErrnoStatus("mkfifo " + path);
      cleanup::AddPath(path, /*is_directory=*/false);
    }
    return std::unique_ptr<EndpointPair>(std::move(pair));
  }

  ~FifoPair() override { RemoveFiles(); }

  absl::StatusOr<std::unique_ptr<Endpoint>> ClientEnd() override {
    ScopedFd out(open(to_server_.c_str(), O_WRONLY | O_CLOEXEC));
    if (!out.valid()) return ErrnoStatus("open " + to_server_);
    ScopedFd in(open(to_client_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid()) return ErrnoStatus("open " + to_client_);
    RemoveFiles();
    return std::unique_ptr<Endpoint>(std::make_unique<FdEndpoint>(std::move(in), std::move(out)));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ServerEnd() override {
    removes_files_ = false;  // the client's job
    ScopedFd in(open(to_server_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid()) return ErrnoStatus("open " + to_server_);
    ScopedFd out(open(to_client_.c_str(), O_WRONLY | O_CLOEXEC));
    if (!out.valid()) return ErrnoStatus("open " + to_client_);
    return std::unique_ptr<Endpoint>(std::make_unique<FdEndpoint>(std::move(in), std::move(out)));
  }

 private:
  FifoPair() = default;

  void RemoveFiles() {
    if (!removes_files_ || dir_.empty()) return;
    cleanup::RemovePath(to_server_);
    cleanup::RemovePath(to_client_);
    cleanup::RemovePath(dir_);
    dir_.clear();
  }

  bool removes_files_ = true;
  std::string dir_, to_server_, to_client_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeFdPair(FdKind kind) {
  if (kind == FdKind::kFifos) return FifoPair::Create();
  return AnonymousFdPair::Create(kind);
}

}  // namespace raw
