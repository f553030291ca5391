// ipcrpc: moving a connection's data path off the unix socket.
//
// Every connection starts on the server's unix socket. A client that wants
// another mechanism (FIFOs, a shared-memory ring, SysV message queues) asks
// for it; the server creates the resources and offers them; the client
// attaches and acknowledges; both sides then carry the byte stream over the
// new mechanism, and the unix socket stays open, carrying nothing, as the
// liveness channel: when either process dies its end closes, and the other
// side's Read/Write fail with UNAVAILABLE at once. docs/PROTOCOL.md §12 has
// the frames.
//
// Each upgradeable transport provides two functions of this shape:
//
//   // Server: create the resources (they are removed if the result is
//   // destroyed before Complete()). Each kernel object that would outlive a
//   // killed process is reported to `created` (if not null) the moment it
//   // exists.
//   absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareXxx(
//       const XxxOptions&, CreatedObjects* created = nullptr);
//
//   // Client: attach to what the server offered. Takes ownership of the
//   // control socket and of the received fds. The negotiation passes a
//   // duplicate of the socket and keeps the original to send TRANSPORT_ACK
//   // (connect/negotiation.cc), so a failed attach can still be reported.
//   absl::StatusOr<std::unique_ptr<Transport>> AttachXxx(
//       const wire::TransportOffer& offer, std::vector<ScopedFd> fds,
//       ScopedFd control_socket, const XxxOptions& options);
//
// After TRANSPORT_ACK the control socket carries no byte in either
// direction; fifo, shm and msgq hand it to a ControlChannel
// (transports/control_channel.h), which treats any byte arriving on it as a
// broken connection. Negotiation reads exactly its frames and never reads
// ahead.
//
// Liveness contract for the Transport both sides end up with: it owns the
// control socket; once that socket reports end-of-file, hang-up or an error,
// a blocked Read/Write returns UNAVAILABLE ("peer closed the connection")
// promptly (no polling interval longer than a few milliseconds), and so do
// later calls; Shutdown() also shuts the control socket down so the peer
// notices; the destructor releases every resource this side still holds
// and removes shared kernel objects (unlinked FIFOs, IPC_RMID queues, closed
// memfds) once no live peer needs them: a queue still holding bytes the live
// peer has not read is removed by that peer after reading them, and a dead
// peer's objects are removed by the survivor. Bytes written before a close
// are delivered before the reader sees UNAVAILABLE.

#ifndef IPCRPC_TRANSPORTS_UPGRADE_H_
#define IPCRPC_TRANSPORTS_UPGRADE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/transport.h"

namespace ipcrpc {

// Told about each kernel object a server-side upgrade creates that the kernel
// keeps after its creator dies — a FIFO directory, a SysV message queue —
// as close to the system call that makes it as can be (before it for a
// directory, right after it for a queue), before anything else can fail or
// take time. connect/pending_objects.h records them, so that a server killed
// in the middle of a negotiation does not leave them behind for good.
class CreatedObjects {
 public:
  // Called just BEFORE the directory is made (its name is chosen first), so
  // it is on record whenever it exists; the name may then never be made.
  virtual void FifoDirectory(const std::string& dir) = 0;
  // Called just after msgget returned `id`.
  virtual void MessageQueue(int id) = 0;

 protected:
  ~CreatedObjects() = default;
};

// The server's half of an upgrade between TRANSPORT_OFFER and TRANSPORT_ACK.
class PendingTransport {
 public:
  // Removes whatever was created, unless Complete() succeeded.
  virtual ~PendingTransport() = default;

  // Sets offer->transport and this transport's params, and appends the fds to
  // send with the offer (they stay owned by this object).
  virtual void FillOffer(wire::TransportOffer* offer, std::vector<int>* fds) = 0;

  // After the client's TRANSPORT_ACK{ok: true}: finishes set-up (e.g. opens
  // the remaining FIFO end and unlinks the FIFOs) and returns the transport.
  // Called at most once.
  virtual absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                              absl::Time deadline) = 0;
};

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_UPGRADE_H_
