// ipcrpc: the transport seam.
//
// A Transport is one connected, private, reliable, ordered byte stream
// between two processes, optionally able to pass file descriptors along with
// the bytes. ipcrpc's framing layer (wire/frame.h) runs unchanged
// on top of every Transport; nothing above this interface knows which
// mechanism (unix socket, socketpair, FIFO pair, shared-memory ring, message
// queue) carries the bytes.
//
// A Connector makes client-side Transports for one address; a Listener
// accepts server-side ones. connect/address.h turns an address string
// into either.
//
// Thread-safety of Transport: at most one thread in Write* and one in Read*
// at a time (they may run concurrently); Interrupt(), Shutdown(), peer() and
// description() are safe from any thread.
//
// Errors: the end of the stream and every broken connection are UNAVAILABLE;
// a deadline that passes is DEADLINE_EXCEEDED; an interrupted Read is ABORTED.
// After a Write error the stream may hold a partial write and must be closed.

#ifndef IPCRPC_TRANSPORTS_TRANSPORT_H_
#define IPCRPC_TRANSPORTS_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/peer_credentials.h"
#include "base/scoped_fd.h"

namespace ipcrpc {

// The file descriptors of one WriteWithFds, as the receiver got them.
struct FdBatch {
  std::vector<ScopedFd> fds;
  // The kernel could not deliver every descriptor of the batch (the receiving
  // process is out of descriptors: RLIMIT_NOFILE, MSG_CTRUNC); `fds` holds
  // those that did arrive, the rest were closed by the kernel.
  bool truncated = false;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Writes every byte of `chunks`, in order, as if concatenated, blocking until
  // done or `deadline`. Implementations use one system call when they can.
  virtual absl::Status Write(absl::Span<const absl::string_view> chunks,
                             absl::Time deadline) = 0;

  // Reads between 1 and buffer.size() bytes into `buffer`. Blocks until some
  // bytes arrive, `deadline` passes, Interrupt() is called, or the stream
  // ends (UNAVAILABLE "peer closed the connection").
  virtual absl::StatusOr<size_t> Read(absl::Span<char> buffer,
                                      absl::Time deadline) = 0;

  // Writes bytes that go before anything else on the connection and need no
  // negotiation — a refusal (PROTOCOL.md §4) — without reading from the
  // peer first. For a transport that negotiates (the server's end of a unix
  // socket, connect/negotiation.h) that is the socket itself, whatever the
  // peer would have asked for; for the others, Write.
  virtual absl::Status WriteFirst(absl::Span<const absl::string_view> chunks,
                                  absl::Time deadline) {
    return Write(chunks, deadline);
  }

  // Makes the Read in progress (or else the next one) return ABORTED at once.
  // Used to hand a reading role from one thread to another.
  virtual void Interrupt() = 0;

  // Shuts both directions: blocked and later Read/Write calls fail with
  // UNAVAILABLE, and the peer sees the end of the stream.
  virtual void Shutdown() = 0;

  // The peer process as the kernel reported it at connection time.
  virtual PeerCredentials peer() const = 0;

  // E.g. "unix:/run/x.sock" or "socketpair:fd=5", for messages and logs.
  virtual std::string description() const = 0;

  // true when this transport already knows, without blocking, that the peer
  // has closed its end or died (a hang-up on the socket or control channel).
  // false means "not known to be gone", not "alive". Used to avoid starting a
  // call on a connection that is already dead. Cheap, but may cost a system
  // call: not for every call on a busy connection.
  virtual bool PeerGone() { return false; }

  // --- Readiness for an event loop (optional; docs/EVENT_CORE.md). ---

  // An fd that polls readable when Read would not block: bytes are waiting,
  // the stream has ended, or it failed. -1 when this transport has none (a
  // thread must block in Read to serve it). A transport that has one holds
  // no bytes of its own that the fd does not announce, and its Read with a
  // deadline already past never blocks: it returns what is there, or
  // DEADLINE_EXCEEDED at once. The reading thread.
  virtual int readiness_fd() { return -1; }
  // readiness_fd() was just reported readable: the next Read need not poll
  // before it reads. The reading thread.
  virtual void NoteReadable() {}
  // Whether the last Read returned everything readable when it ran (the
  // kernel held no more bytes then), so that a reader which now waits for
  // readiness_fd() to report *new* bytes (edge-triggered) misses none.
  // false when the transport cannot tell: such a reader reads until a Read
  // with a past deadline says DEADLINE_EXCEEDED. The reading thread.
  virtual bool ReadDrained() const { return false; }

  // --- File descriptor passing (optional). ---

  // How many fds one WriteWithFds may carry; 0 when unsupported. A receiver
  // never accepts more than this per read (excess fds are closed and the read
  // fails with RESOURCE_EXHAUSTED), which bounds what a hostile peer can push.
  virtual int max_fds_per_write() const { return 0; }

  // Like Write, and `fds` (duplicated by the kernel; the caller keeps its
  // own) arrive with the first byte of `chunks`.
  virtual absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                                    absl::Span<const int> fds,
                                    absl::Time deadline) {
    if (fds.empty()) return Write(chunks, deadline);
    return absl::UnimplementedError(description() +
                                    ": this transport cannot pass file descriptors");
  }

  // Like Read; fds that arrived with these bytes are appended to *fds.
  virtual absl::StatusOr<size_t> ReadWithFds(absl::Span<char> buffer,
                                             std::vector<ScopedFd>* /*fds*/,
                                             absl::Time deadline) {
    return Read(buffer, deadline);
  }

  // --- File descriptors kept apart per write (the framing layer's view). ---
  //
  // Every WriteWithFds makes one batch at the receiver. A batch sent with
  // byte B of the stream is handed over no later than the read that returns
  // B: in band by ReadWithFdBatches (unix sockets: SCM_RIGHTS on the bytes
  // themselves), or out of band by TakeFdBatch (fifo, shm, msgq: the batch
  // travels on the control socket before the bytes enter the data path).

  // Like Read; each batch that arrived with these bytes is appended to
  // *batches, whole, in the order sent. Never fails because of fds: a batch
  // the kernel could not deliver whole (this process is out of descriptors,
  // MSG_CTRUNC) is appended with `truncated` set.
  virtual absl::StatusOr<size_t> ReadWithFdBatches(absl::Span<char> buffer,
                                                   std::vector<FdBatch>* /*batches*/,
                                                   absl::Time deadline) {
    return Read(buffer, deadline);
  }

  // Takes the next batch sent out of band, without blocking: NOT_FOUND when
  // none is waiting (always, for transports that pass fds in band);
  // UNAVAILABLE when what is waiting is not a well-formed batch (the peer
  // misbehaves; the connection is over).
  virtual absl::StatusOr<FdBatch> TakeFdBatch() {
    return absl::NotFoundError(description() + ": no out-of-band file descriptors");
  }
};

// Makes client-side connections to one address. Thread-safe.
class Connector {
 public:
  virtual ~Connector() = default;
  // Connects, or fails with UNAVAILABLE (nobody listening), DEADLINE_EXCEEDED
  // or another status naming the address and the reason.
  virtual absl::StatusOr<std::unique_ptr<Transport>> Connect(
      absl::Time deadline) = 0;
  virtual std::string target() const = 0;
};

// Accepts server-side connections at one address. Accept() is called by one
// thread; Close() from any thread makes it return CANCELLED. Destroying the
// listener removes what it created (e.g. the socket file).
class Listener {
 public:
  virtual ~Listener() = default;
  virtual absl::StatusOr<std::unique_ptr<Transport>> Accept() = 0;
  virtual void Close() = 0;
  virtual std::string address() const = 0;
  // Peers this listener refused before handing them out (e.g. by an access
  // policy); for the server's statistics.
  virtual uint64_t refused_peers() const { return 0; }
};

}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_TRANSPORT_H_
