// Raw mechanism on SysV message queues: one private queue per direction
// (IPC_PRIVATE, inherited over fork()), blocking msgsnd()/msgrcv() of
// fragments of at most msgmax bytes (/proc/sys/kernel/msgmax, 8 KiB by
// default). The queues keep the system's default capacity (msgmnb). The parent
// removes both with IPC_RMID when done, or when interrupted (cleanup.h).

#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "base/scoped_fd.h"
#include "bench/raw/cleanup.h"
#include "bench/raw/endpoint.h"

namespace raw {
namespace {

constexpr long kMessageType = 1;

size_t MaxFragment() {
  std::ifstream in("/proc/sys/kernel/msgmax");
  size_t msgmax = 8192;
  in >> msgmax;
  return std::clamp<size_t>(msgmax, 64, 1 << 20);
}

class MsgqEndpoint final : public Endpoint {
 public:
  MsgqEndpoint(int out, int in, size_t max_fragment)
      : out_(out), in_(in), max_fragment_(max_fragment),
        buffer_(sizeof(long) + max_fragment) {}

  absl::Status Send(const char* data, size_t size) override {
    while (size > 0) {
      size_t n = std::min(size, max_fragment_);
      long type = kMessageType;
      std::memcpy(buffer_.data(), &type, sizeof(type));
      std::memcpy(buffer_.data() + sizeof(long), data, n);
      for (;;) {
        if (msgsnd(out_, buffer_.data(), n, 0) == 0) break;
        if (errno != EINTR) return ipcrpc::ErrnoStatus(errno, "msgsnd");
        if (cleanup::ChildExited()) return absl::UnavailableError("the server process ended");
      }
      data += n;
      size -= n;
    }
    return absl::OkStatus();
  }

  // A fragment larger than `capacity` is kept in pending_ for the next call.
  absl::StatusOr<size_t> ReceiveSome(char* data, size_t capacity) override {
    if (pending_offset_ == pending_.size()) {
      ssize_t n;
      for (;;) {
        n = msgrcv(in_, buffer_.data(), max_fragment_, 0, 0);
        if (n >= 0) break;
        if (errno != EINTR) return ipcrpc::ErrnoStatus(errno, "msgrcv");
        if (cleanup::ChildExited()) return absl::UnavailableError("the server process ended");
      }
      const char* text = buffer_.data() + sizeof(long);
      if (static_cast<size_t>(n) <= capacity) {  // the common case: straight to the caller
        std::memcpy(data, text, n);
        return static_cast<size_t>(n);
      }
      pending_.assign(text, text + n);
      pending_offset_ = 0;
    }
    size_t n = std::min(capacity, pending_.size() - pending_offset_);
    std::memcpy(data, pending_.data() + pending_offset_, n);
    pending_offset_ += n;
    return n;
  }

 private:
  int out_, in_;
  size_t max_fragment_;
  std::vector<char> buffer_;  // a struct msgbuf: long mtype, then the text
  std::vector<char> pending_;
  size_t pending_offset_ = 0;
};

class MsgqPair final : public EndpointPair {
 public:
  static absl::StatusOr<std::unique_ptr<EndpointPair>> Create() {
    auto pair = std::unique_ptr<MsgqPair>(new MsgqPair());
    for (int* id : {&pair->to_server_, &pair->to_client_}) {
      *id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
      if (*id < 0) return ipcrpc::ErrnoStatus(errno, "msgget");
      cleanup::AddMsgq(*id);
    }
    return std::unique_ptr<EndpointPair>(std::move(pair));
  }

  ~MsgqPair() override {
    if (!owner_) return;
    for (int id : {to_server_, to_client_}) {
      if (id >= 0) cleanup::RemoveMsgq(id);
    }
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ClientEnd() override {
    return std::unique_ptr<Endpoint>(
        std::make_unique<MsgqEndpoint>(to_server_, to_client_, MaxFragment()));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ServerEnd() override {
    owner_ = false;  // the parent removes the queues
    return std::unique_ptr<Endpoint>(
        std::make_unique<MsgqEndpoint>(to_client_, to_server_, MaxFragment()));
  }

 private:
  MsgqPair() = default;
  bool owner_ = true;
  int to_server_ = -1, to_client_ = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeMsgqPair() { return MsgqPair::Create(); }

}  // namespace raw
