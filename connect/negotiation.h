// ipcrpc: choosing a connection's data transport over the server's unix socket.
//
// Every server listens on a unix socket. A client that wants another data
// path sends TRANSPORT_REQUEST (the transports it accepts, most preferred
// first) as its first frame; the server picks the first one it allows and
// answers TRANSPORT_OFFER (parameters, and fds such as a memfd); the client
// attaches and answers TRANSPORT_ACK; then the byte stream (HELLO first)
// runs over the chosen transport while the socket stays open as the liveness
// channel. A client that starts with HELLO instead stays on the unix socket.
// docs/PROTOCOL.md §12 has the bytes.
//
// The transports that can be negotiated are passed in explicitly as a table
// of UpgradeableTransport entries (connect/address.cc builds the real one),
// so tests can add their own.
//
// Thread-safety: connectors and listeners as in transport.h.

#ifndef IPCRPC_CONNECT_NEGOTIATION_H_
#define IPCRPC_CONNECT_NEGOTIATION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transports/transport.h"
#include "transports/unix_socket.h"
#include "transports/upgrade.h"

namespace ipcrpc {

// Name of the plain unix-socket data path in requests and offers.
inline constexpr char kUnixTransportName[] = "unix";

// One transport that a connection can move to, with its options bound in.
struct UpgradeableTransport {
  std::string name;  // "fifo", "shm", "shm+sem", "msgq", ...
  // Server side: create the resources for one connection (the request may
  // carry wishes, e.g. a ring size, that the server may honour), reporting
  // to `created` each kernel object that would outlive a killed server.
  std::function<absl::StatusOr<std::unique_ptr<PendingTransport>>(
      const wire::TransportRequest& request, CreatedObjects* created)>
      prepare;
  // Client side: attach to what the server offered.
  std::function<absl::StatusOr<std::unique_ptr<Transport>>(
      const wire::TransportOffer& offer, std::vector<ScopedFd> fds, ScopedFd control_socket)>
      attach;
  // Whether prepare creates such objects (FIFOs, SysV queues): then the
  // negotiation keeps a record of them (connect/pending_objects.h).
  bool creates_lasting_objects = false;
};

// Connects to the unix socket of `connector` and negotiates one of
// `preference` (names; "unix" means the socket itself). With preference
// {"unix"} nothing is negotiated: the socket is the transport.
class NegotiatingConnector final : public Connector {
 public:
  // `target` names the connection in errors, e.g. "shm:/run/x.sock".
  // `request` carries the client's wishes (e.g. ring_bytes); its
  // `transports` are filled from `preference`.
  NegotiatingConnector(std::string target, std::unique_ptr<UnixSocketConnector> connector,
                       std::vector<std::string> preference,
                       std::vector<UpgradeableTransport> available,
                       wire::TransportRequest request = {});
  absl::StatusOr<std::unique_ptr<Transport>> Connect(absl::Time deadline) override;
  std::string target() const override { return target_; }

 private:
  const std::string target_;
  const std::unique_ptr<UnixSocketConnector> connector_;
  const std::vector<std::string> preference_;
  const std::vector<UpgradeableTransport> available_;
  wire::TransportRequest request_;
};

// Decides whether a connecting peer is served: OK, or the status it is
// refused with (see wire/refusal.h). Runs on the accepting thread.
using PeerAdmission = std::function<absl::Status(const PeerCredentials&)>;

// Listens on a unix socket and lets each client choose among `allowed`
// (plus "unix" itself when `allow_unix`). Accept() returns at once; the
// negotiation runs on the connection's own thread, on its first Read/Write.
// With `admit`, a peer it refuses gets a refusing GOAWAY and is closed inside
// Accept(), before any negotiation (so it is never given a ring, FIFOs or
// queues); Accept() then waits for the next peer.
class NegotiatingListener final : public Listener {
 public:
  NegotiatingListener(std::unique_ptr<UnixSocketListener> listener,
                      std::vector<UpgradeableTransport> allowed, bool allow_unix,
                      PeerAdmission admit = nullptr);
  absl::StatusOr<std::unique_ptr<Transport>> Accept() override;
  void Close() override { listener_->Close(); }
  std::string address() const override { return listener_->address(); }

  // Peers refused by `admit` so far.
  uint64_t refused_peers() const override { return refused_.load(std::memory_order_relaxed); }

 private:
  const std::unique_ptr<UnixSocketListener> listener_;
  const std::shared_ptr<const std::vector<UpgradeableTransport>> allowed_;
  const bool allow_unix_;
  const PeerAdmission admit_;
  std::atomic<uint64_t> refused_{0};
};

// The two halves on an already-connected socket (a spawned worker's
// socketpair, for instance). The client half negotiates at once; the server
// half returns a transport that negotiates on its first Read/Write.
absl::StatusOr<std::unique_ptr<Transport>> NegotiateAsClient(
    std::unique_ptr<UnixSocketTransport> socket, absl::string_view target,
    const std::vector<std::string>& preference, const std::vector<UpgradeableTransport>& available,
    wire::TransportRequest request, absl::Time deadline);
std::unique_ptr<Transport> NegotiateAsServer(
    std::unique_ptr<UnixSocketTransport> socket,
    std::shared_ptr<const std::vector<UpgradeableTransport>> allowed, bool allow_unix);

}  // namespace ipcrpc

#endif  // IPCRPC_CONNECT_NEGOTIATION_H_
