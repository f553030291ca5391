// ipcrpc: the named-pipe (FIFO) transport.
//
// A connection upgraded to "fifo" carries its byte stream over two FIFOs, one
// per direction, while the unix socket it started on stays open, silent, as
// the liveness channel (transports/upgrade.h). FIFOs cannot pass file
// descriptors (max_fds_per_write() is 0) and move data through 64 KiB pipe
// buffers, so large writes stream through in pieces.
//
// Set-up (docs/transports/fifo.md; the frames are in docs/PROTOCOL.md §12):
//
//   server  PrepareFifo: mkdir PARENT/ipcrpc-fifo-RANDOM (0700), mkfifo c2s
//           and s2c in it (0600), open c2s for reading
//           (O_RDONLY|O_NONBLOCK: needs no writer yet).
//   server  FillOffer → TRANSPORT_OFFER{transport: "fifo", fifo: {both paths}}
//   client  AttachFifo: check that the directory and both paths are what a
//           server running as the control socket's SO_PEERCRED uid made
//           (owner, no symlink, FIFOs, directory not writable by others),
//           open c2s for writing and s2c for reading (both O_NONBLOCK).
//   client  → TRANSPORT_ACK{ok: true} (sent by the caller)
//   server  Complete: open s2c for writing (ENXIO: the client has no reader
//           open → FAILED_PRECONDITION), then unlink both FIFOs and remove the
//           directory. From here on nothing of the connection is on disk.
//
// If the PendingTransport is destroyed before Complete(), or any step fails,
// the directory and the FIFOs are removed.
//
// Users: the client must be able to enter the server's 0700 directory, i.e.
// run as the server's user (or as root). A server should offer "fifo" only to
// such clients.
//
// Liveness: end-of-file on the read FIFO, or what ends the control channel
// (transports/control_channel.h: end-of-file, hang-up or an error on the
// control socket, or a stray byte on it), makes Read/Write return
// UNAVAILABLE; the control socket is polled together with the FIFO. Writing to a FIFO whose reader has gone raises SIGPIPE;
// this transport blocks SIGPIPE in the writing thread for the duration of a
// Write and consumes the signal it caused, so the process survives and its
// signal disposition is never changed.
//
// Thread-safety: as for every Transport (transports/transport.h).
// PrepareFifo and AttachFifo may be called from any thread; a
// PendingTransport is used by one thread.
//
// Example (server, after reading TRANSPORT_REQUEST on `socket`):
//   IPCRPC_ASSIGN_OR_RETURN(auto pending, ipcrpc::PrepareFifo({}));
//   wire::TransportOffer offer;
//   std::vector<int> fds;
//   pending->FillOffer(&offer, &fds);      // send the offer, await the ACK
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//                           pending->Complete(std::move(socket), deadline));
// Example (client, after reading TRANSPORT_OFFER `offer` on `socket`):
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//                           ipcrpc::AttachFifo(offer, {}, std::move(socket), {}));

#ifndef IPCRPC_TRANSPORTS_FIFO_FIFO_H_
#define IPCRPC_TRANSPORTS_FIFO_FIFO_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/transport.h"
#include "transports/upgrade.h"

namespace ipcrpc {

// The name of this transport on the wire and in TransportOffer.transport.
inline constexpr char kFifoTransportName[] = "fifo";

struct FifoOptions {
  // Where the server makes its private directory. Used by PrepareFifo only.
  std::string parent_dir = "/tmp";
};

// Server: creates the directory and both FIFOs and opens the server's read
// end. The result removes them unless its Complete() succeeds. The directory
// is reported to `created` (if not null) as soon as it exists.
absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareFifo(const FifoOptions& options,
                                                              CreatedObjects* created = nullptr);

// Client: checks and opens the FIFOs named in `offer`. `fds` must be empty
// (a FIFO offer carries none). Takes ownership of `control_socket`, which
// must be the connected unix socket the offer arrived on; it is closed if
// this fails.
absl::StatusOr<std::unique_ptr<Transport>> AttachFifo(const wire::TransportOffer& offer,
                                                      std::vector<ScopedFd> fds,
                                                      ScopedFd control_socket,
                                                      const FifoOptions& options);

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_FIFO_FIFO_H_
