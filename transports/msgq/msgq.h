// ipcrpc: the SysV message queue transport ("msgq").
//
// An upgraded connection (transports/upgrade.h) whose byte stream travels
// over two System V message queues, one per direction. The server creates
// both (msgget(IPC_PRIVATE, 0600)) and offers their ids; the client checks
// that each queue exists, has mode 0600 and was created by, and is owned by,
// the server's uid (SO_PEERCRED of the control socket) before it uses them.
// Both processes must therefore run as the same user (or the client as root).
//
// The stream is cut into fragments of at most max_fragment_bytes (one
// msgsnd each); a Read returns bytes from the fragments in order and keeps
// what did not fit for the next Read. docs/transports/msgq.md describes the
// message types, how blocked calls are woken (SysV queues cannot be polled),
// when the queues are removed, and the limits.
//
// Thread-safety: as for every Transport (transport.h). Each transport runs
// one watcher thread of its own: its ControlChannel's
// (transports/control_channel.h), for control-socket liveness and, through
// the channel's timer hooks, deadlines. A thread that cannot start fails
// Complete / AttachMsgq with RESOURCE_EXHAUSTED.
// Write and Read allocate nothing on their common path.
//
// Removal: a queue is removed (IPC_RMID) as soon as nobody can need it any
// more: by whichever side closes first, unless it still holds bytes the live
// peer has not read, in which case the peer removes it once it has read to
// the end of the stream or is itself closed. A PendingTransport destroyed
// before Complete() removes both queues.
//
// Example (server, between TRANSPORT_REQUEST and TRANSPORT_ACK):
//   IPCRPC_ASSIGN_OR_RETURN(auto pending, ipcrpc::PrepareMsgq({}));
//   wire::TransportOffer offer;
//   std::vector<int> fds;
//   pending->FillOffer(&offer, &fds);   // send the offer, wait for the ack
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//                           pending->Complete(std::move(control), deadline));
// Example (client, on TRANSPORT_OFFER{transport: "msgq"}):
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//       ipcrpc::AttachMsgq(offer, std::move(fds), std::move(control), {}));

#ifndef IPCRPC_TRANSPORTS_MSGQ_MSGQ_H_
#define IPCRPC_TRANSPORTS_MSGQ_MSGQ_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/transport.h"
#include "transports/upgrade.h"

namespace ipcrpc {

struct MsgqOptions {
  // Largest message text per msgsnd. 0: the system's msgmax
  // (/proc/sys/kernel/msgmax, read at run time). Larger values are clamped
  // to msgmax and to the queue's byte limit (msgmnb). The server's value is
  // sent in the offer; the client never sends larger fragments than that.
  size_t max_fragment_bytes = 0;
};

// Server: creates the two queues. They are removed if the result is
// destroyed before Complete() succeeds. Each is reported to `created` (if not
// null) as soon as it exists.
absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareMsgq(
    const MsgqOptions& options, CreatedObjects* created = nullptr);

// Client: validates and attaches to the queues named in `offer` (`fds` must
// be empty: this transport sends none). Takes ownership of `control_socket`,
// which becomes the liveness channel.
absl::StatusOr<std::unique_ptr<Transport>> AttachMsgq(
    const wire::TransportOffer& offer, std::vector<ScopedFd> fds,
    ScopedFd control_socket, const MsgqOptions& options);

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_MSGQ_MSGQ_H_
