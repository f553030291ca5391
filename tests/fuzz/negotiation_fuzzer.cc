// libFuzzer target: the server side of transport negotiation
// (connect/negotiation.h) fed arbitrary bytes on its unix socket, as a
// hostile client would send them: TRANSPORT_REQUEST, the ACK, or anything.
// Upgrades go to a fake transport that creates nothing, so no IPC object is
// made; the server must refuse, offer, or fall back to the socket cleanly.

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "connect/negotiation.h"

namespace ipcrpc {
namespace {

class FakePending final : public PendingTransport {
 public:
  explicit FakePending(bool complete_ok) : complete_ok_(complete_ok) {}
  void FillOffer(wire::TransportOffer* offer, std::vector<int>*) override {
    offer->set_transport("fake");
  }
  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd socket, absl::Time) override {
    if (!complete_ok_) return absl::FailedPreconditionError("fake: refused");
    return std::unique_ptr<Transport>(
        *UnixSocketTransport::Create(std::move(socket), "fake data path"));
  }

 private:
  bool complete_ok_;
};

std::shared_ptr<const std::vector<UpgradeableTransport>> FakeTable() {
  UpgradeableTransport fake;
  fake.name = "fake";
  fake.prepare = [](const wire::TransportRequest& request, CreatedObjects*)
      -> absl::StatusOr<std::unique_ptr<PendingTransport>> {
    // The ring size a client asks for is only a wish.
    return std::unique_ptr<PendingTransport>(new FakePending(request.ring_bytes() % 2 == 0));
  };
  UpgradeableTransport failing;
  failing.name = "failing";
  failing.prepare = [](const wire::TransportRequest&, CreatedObjects*)
      -> absl::StatusOr<std::unique_ptr<PendingTransport>> {
    return absl::ResourceExhaustedError("failing: no resources");
  };
  return std::make_shared<const std::vector<UpgradeableTransport>>(
      std::vector<UpgradeableTransport>{fake, failing});
}

}  // namespace
}  // namespace ipcrpc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipcrpc;
  static const auto table = FakeTable();
  if (size < 1 || size > 100000) return 0;
  const bool allow_unix = data[0] & 1;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  // The client's bytes (what fits in the socket buffer), then end-of-file:
  // the server never waits for more.
  auto server_socket = UnixSocketTransport::Create(ScopedFd(fds[1]), "fuzz server");
  if (!server_socket.ok()) {
    close(fds[0]);
    return 0;
  }
  std::unique_ptr<Transport> server =
      NegotiateAsServer(std::move(*server_socket), table, allow_unix);
  size_t written = 0;
  const uint8_t* bytes = data + 1;
  const size_t length = size - 1;
  while (written < length) {
    ssize_t n = send(fds[0], bytes + written, length - written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  shutdown(fds[0], SHUT_WR);
  char buffer[4096];
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<size_t> n = server->Read(absl::MakeSpan(buffer), deadline);
    if (!n.ok()) break;
  }
  server->Write({absl::string_view("x")}, deadline).IgnoreError();
  server.reset();
  close(fds[0]);
  return 0;
}
