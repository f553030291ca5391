// ipcrpc: the shared-memory ring transport ("shm", "shm+sem").
//
// After a client and a server have met on the server's unix socket, they can
// move the connection's byte stream into shared memory (transports/upgrade.h,
// docs/PROTOCOL.md §12): the server PrepareShm()s a memfd holding two
// single-producer/single-consumer byte rings, one per direction, and offers
// it; the client AttachShm()es to it; the server Complete()s. Bytes then go
// from one process to the other with one memcpy in and one out; a Write or
// Read makes no system call while the peer is awake, and wakes the peer
// (FUTEX_WAKE, or sem_post in "shm+sem") only when the peer announced that
// it sleeps. docs/transports/shm.md has the layout and the protocol.
//
// Waiting: a Read with no data (or a Write with a full ring) first spins,
// then sleeps on a futex word / process-shared semaphore in the region. The
// spin adapts (transports/shm/spin_policy.h): it keeps its full budget
// (ShmOptions::max_spin, default 50 us) while spins see the data arrive,
// halves it and then stops spinning when they do not (e.g. both processes on
// one CPU, where spinning only delays the peer), probes again now and then
// with exponential back-off, and never spins while the peer last ran on
// this CPU. `spin = false` turns it off.
//
// Liveness: each transport owns the connection's unix socket (the control
// socket, which carries nothing more) through a ControlChannel
// (transports/control_channel.h) whose watcher thread polls it. When the
// peer closes it, dies, or sends a stray byte on it, blocked and later
// Read/Write calls return UNAVAILABLE at once (bytes already in the ring are
// still read first). A watcher thread that cannot start makes PrepareShm's
// Complete / AttachShm fail with RESOURCE_EXHAUSTED. Shutdown() marks this
// side closed in the region, wakes everyone and shuts the control socket
// down for writing.
//
// Trust: the peer can write anywhere in the region. Every counter read from
// it is validated before use; a peer that scribbles over the header or the
// counters makes this side's Read/Write fail with DATA_LOSS (for good), never
// read or write outside the region. The memfd is sealed against shrinking,
// so the mapping cannot fault. In "shm+sem" the semaphores are operated by
// ipcrpc's own futex code, not glibc's, so a scribbled semaphore cannot abort
// this process either (transports/shm/shared_semaphore.h).
//
// Thread-safety: as for every Transport (transports/transport.h). The
// PendingTransport is used by one thread.
//
// Example (in-process; real use goes through the upgrade on a unix socket):
//   IPCRPC_ASSIGN_OR_RETURN(auto pending, PrepareShm(ShmOptions{}));   // server
//   wire::TransportOffer offer;
//   std::vector<int> fds;
//   pending->FillOffer(&offer, &fds);            // send offer + fds to the client
//   auto client = AttachShm(offer, received_fds, std::move(client_socket), {});
//   auto server = pending->Complete(std::move(server_socket), deadline);   // after the ACK

#ifndef IPCRPC_TRANSPORTS_SHM_SHM_RING_H_
#define IPCRPC_TRANSPORTS_SHM_SHM_RING_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/transport.h"
#include "transports/upgrade.h"

namespace ipcrpc {

struct ShmOptions {
  // Capacity of each ring (per direction), bytes: a power of two, at least
  // 4096, at most 1 GiB. Used by PrepareShm; the client takes the offer's.
  // 256 KiB: each connection commits 2 x this (both directions), so a
  // thousand connections cost 512 MiB; larger messages stream through.
  uint64_t ring_bytes = 256 << 10;
  // How a waiting side sleeps: FUTEX ("shm") or SEMAPHORE ("shm+sem"). Used
  // by PrepareShm; the client takes the offer's.
  wire::ShmParams::Wake wake = wire::ShmParams::FUTEX;
  // Spin before sleeping (adaptive; see the header comment). Each side uses
  // its own options here.
  bool spin = true;
  // Longest spin before sleeping; at most 10 ms.
  absl::Duration max_spin = absl::Microseconds(50);
};

// Server: creates the sealed memfd region and returns the pending half of the
// upgrade (transports/upgrade.h). FillOffer sets offer->transport to "shm" or
// "shm+sem", offer->shm and appends the memfd. INVALID_ARGUMENT for bad
// options.
absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareShm(const ShmOptions& options);

// Client: attaches to what the server offered. `fds` must hold exactly the
// offered memfd. Takes ownership of `fds` and `control_socket` (a connected
// AF_UNIX socket). INVALID_ARGUMENT for a malformed offer; FAILED_PRECONDITION
// when the fd is not a sealed memfd of the offered size or its header is not
// an ipcrpc ring of the offered parameters.
absl::StatusOr<std::unique_ptr<Transport>> AttachShm(const wire::TransportOffer& offer,
                                                    std::vector<ScopedFd> fds,
                                                    ScopedFd control_socket,
                                                    const ShmOptions& options);

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_SHM_SHM_RING_H_
