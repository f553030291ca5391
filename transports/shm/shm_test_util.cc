// ipcrpc shm transport tests: shared helpers (shm_test_util.h).

#include "transports/shm/shm_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <utility>

#include "absl/strings/match.h"
#include "base/status_macros.h"

namespace ipcrpc::shm_test {

::testing::AssertionResult Mentions(absl::string_view message, absl::string_view text) {
  if (absl::StrContains(message, text)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << message << "\" does not mention \"" << text
                                       << "\"";
}

ShmOptions Options(uint64_t ring_bytes, wire::ShmParams::Wake wake, bool spin) {
  ShmOptions options;
  options.ring_bytes = ring_bytes;
  options.wake = wake;
  options.spin = spin;
  return options;
}

absl::StatusOr<ControlPair> MakeControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  return ControlPair{ScopedFd(sv[0]), ScopedFd(sv[1])};
}

std::vector<ScopedFd> DupAll(const std::vector<int>& fds) {
  std::vector<ScopedFd> out;
  for (int fd : fds) out.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  return out;
}

uint32_t WakeCode(wire::ShmParams::Wake wake) {
  return wake == wire::ShmParams::SEMAPHORE ? shm::kWakeSemaphore : shm::kWakeFutex;
}

absl::StatusOr<Connection> Connect(const ShmOptions& options, bool with_view) {
  IPCRPC_ASSIGN_OR_RETURN(ControlPair control, MakeControlPair());
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending, PrepareShm(options));
  wire::TransportOffer offer;
  std::vector<int> fds;
  pending->FillOffer(&offer, &fds);
  Connection c;
  if (with_view) {
    std::vector<ScopedFd> dup = DupAll(fds);
    IPCRPC_ASSIGN_OR_RETURN(shm::ShmRegion view,
                            shm::ShmRegion::Attach(std::move(dup[0]), options.ring_bytes,
                                                   WakeCode(options.wake)));
    view.CloseMemfd();
    c.view.emplace(std::move(view));
  }
  IPCRPC_ASSIGN_OR_RETURN(c.client,
                          AttachShm(offer, DupAll(fds), std::move(control.client), options));
  IPCRPC_ASSIGN_OR_RETURN(c.server,
                          pending->Complete(std::move(control.server), absl::InfiniteFuture()));
  return c;
}

OfferFixture MakeOffer(wire::ShmParams::Wake wake) {
  OfferFixture f;
  f.pending = std::move(PrepareShm(Options(4096, wake))).value();
  f.pending->FillOffer(&f.offer, &f.fds);
  f.control = std::move(MakeControlPair()).value();
  return f;
}

absl::Status AttachWith(const wire::TransportOffer& offer, std::vector<ScopedFd> fds) {
  auto control = MakeControlPair();
  if (!control.ok()) return control.status();
  return AttachShm(offer, std::move(fds), std::move(control->client), ShmOptions{}).status();
}

}  // namespace ipcrpc::shm_test
