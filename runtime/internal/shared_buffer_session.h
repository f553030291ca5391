// ipcrpc internal: one connection's shared buffers, both directions.
//
// Owner side (buffers this process sends): the segments it created, the
// allocator of each, and per buffer two hold counts — local (live
// SharedBufferWriters) and remote (references sent that the peer has not
// released). Space is reused only when both are zero. A new segment is
// announced with a SEGMENT frame before Allocate returns, so every MESSAGE
// naming it comes after it on the wire.
//
// Peer side (buffers this process receives): the peer's segments, validated
// and mapped read-only as their SEGMENT frames are read; Resolve turns a
// MESSAGE's buffer table into holds (ReceivedBuffer), bounds-checked; a hold
// dropped queues a release, and FlushReleases sends the queue as one
// BUFFER_RELEASE frame.
//
// The wire rules are docs/PROTOCOL.md §13; the design docs/SHARED_BUFFERS.md.
//
// Thread-safety: every method is thread-safe. `mu_` is a leaf lock (nothing
// else is taken, no frame is written, while it is held), so holds may be
// dropped under any connection lock; only FlushReleases and Allocate write,
// and they must be called with no connection lock held.
//
// Ownership: shared (std::shared_ptr) by the connection, writers, views and
// contexts; Close() (the connection ended) forgets every segment — mappings
// still used by a writer or a view stay until those are destroyed.

#ifndef IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_SESSION_H_
#define IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_SESSION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/scoped_fd.h"
#include "base/sync.h"
#include "runtime/internal/segment_allocator.h"
#include "runtime/internal/shared_segment.h"
#include "wire/shared_buffer_format.h"

namespace ipcrpc::internal {

class SharedBufferSession;

struct SharedBufferLimits {
  uint64_t pool_bytes = uint64_t{2} << 30;   // all segments this side owns, together
  uint64_t arena_bytes = uint64_t{64} << 20;  // the smallest segment
};

// A peer's most segments mapped at once, and their total size.
inline constexpr size_t kMaxPeerSegments = 4096;
inline constexpr uint64_t kMaxPeerSegmentBytes = uint64_t{1} << 40;

// One reference received from the peer: keeps its bytes mapped, and queues
// a release when destroyed. Move-only.
class ReceivedBuffer {
 public:
  ReceivedBuffer() = default;
  ReceivedBuffer(std::shared_ptr<SharedBufferSession> session,
                 std::shared_ptr<const SegmentMapping> mapping, uint32_t key,
                 const uint8_t* data, size_t size)
      : session_(std::move(session)), mapping_(std::move(mapping)), key_(key), data_(data),
        size_(size) {}
  ReceivedBuffer(ReceivedBuffer&& other) noexcept { *this = std::move(other); }
  ReceivedBuffer& operator=(ReceivedBuffer&& other) noexcept;
  ~ReceivedBuffer() { Release(); }

  uint32_t key() const { return key_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::shared_ptr<SharedBufferSession>& session_ptr() const { return session_; }
  // Drops the reference now (queues its release).
  void Release();

 private:
  std::shared_ptr<SharedBufferSession> session_;
  std::shared_ptr<const SegmentMapping> mapping_;
  uint32_t key_ = 0;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A buffer just allocated by this side.
struct AllocatedBuffer {
  uint32_t key = 0;
  uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<SegmentMapping> mapping;  // keeps `data` valid
};

class SharedBufferSession : public std::enable_shared_from_this<SharedBufferSession> {
 public:
  // Writes whole frames on the connection, with `fds` sent with the first
  // byte; fails once the connection is gone.
  using FrameWriter = std::function<absl::Status(absl::string_view frames,
                                                 absl::Span<const int> fds)>;

  // `description` names the connection in errors.
  SharedBufferSession(std::string description, SharedBufferLimits limits, FrameWriter write);
  SharedBufferSession(const SharedBufferSession&) = delete;
  SharedBufferSession& operator=(const SharedBufferSession&) = delete;

  const std::string& description() const { return description_; }

  // Reads the frames already waiting on the connection (so that releases the
  // peer sent are applied) without waiting for more; set once, before the
  // session is shared. The client's: a client reads only while a call of
  // its waits, so a pool found full may just have unread releases.
  void set_read_waiting_frames(std::function<void()> read) { read_waiting_ = std::move(read); }

  // ---- Owner side.
  // A new buffer of `size` bytes (1..pool_bytes), held locally once.
  // RESOURCE_EXHAUSTED when the pool cannot make room under its cap (after
  // reading the frames already waiting, if set_read_waiting_frames was
  // called); UNAVAILABLE once the connection has ended. No connection lock
  // may be held.
  absl::StatusOr<AllocatedBuffer> Allocate(size_t size);
  // A writer for `key` was destroyed.
  void DropLocal(uint32_t key);
  // Sending: one more reference to `key` goes to the peer; *out is its
  // table entry. INVALID_ARGUMENT if `key` is not a buffer of this pool that
  // is still held here (writer alive or attached).
  absl::Status AddRemote(uint32_t key, BufferReference* out);
  // Undoes AddRemote for a message that was not sent after all.
  void UndoRemote(uint32_t key);
  // BUFFER_RELEASE arrived. DATA_LOSS (a protocol error: the caller closes
  // the connection) for a malformed payload or a key the peer does not hold.
  absl::Status OnRelease(absl::string_view payload);

  // ---- Peer side.
  // SEGMENT arrived with `fds`. A malformed frame is a protocol error
  // (DATA_LOSS); a descriptor that fails validation is not: the segment is
  // recorded as refused, and messages naming it fail with the reason.
  absl::Status OnSegment(absl::string_view payload, std::vector<ScopedFd> fds);
  // SEGMENT_RETIRE arrived. DATA_LOSS for a malformed payload.
  absl::Status OnRetire(absl::string_view payload);
  // The references of one MESSAGE: a hold per entry, or INVALID_ARGUMENT
  // (RESOURCE_EXHAUSTED for a segment refused for its size) naming the first
  // bad one — then no hold is kept.
  absl::Status Resolve(const std::vector<BufferReference>& refs, std::vector<ReceivedBuffer>* out);
  // A hold was dropped (ReceivedBuffer): its release waits for FlushReleases.
  void QueueRelease(uint32_t key);
  // Sends the queued releases, if any, in one frame. No connection lock may
  // be held.
  void FlushReleases();
  // Whether a release waits for FlushReleases: a reader that handled a frame
  // drops its connection lock to flush only then.
  bool HasQueuedReleases() const { return has_releases_.load(std::memory_order_acquire); }

  // The connection ended: forget everything; allocation fails from now on.
  void Close();

  // For tests and diagnostics.
  struct Stats {
    size_t own_segments = 0;
    uint64_t own_bytes = 0;        // sizes of the segments this side owns
    uint64_t allocated_bytes = 0;  // within them, held by someone
    size_t peer_segments = 0;
  };
  Stats stats() const;

 private:
  // Inserted once its SEGMENT frame has been written: only then may a
  // message name it.
  struct OwnSegment {
    OwnSegment(std::shared_ptr<SegmentMapping> m, uint64_t size)
        : mapping(std::move(m)), allocator(size) {}
    std::shared_ptr<SegmentMapping> mapping;
    SegmentAllocator allocator;
  };
  struct Allocation {
    uint32_t segment = 0;
    uint64_t offset = 0;
    uint64_t length = 0;
    uint32_t local = 0;
    uint32_t remote = 0;
  };
  struct PeerSegment {
    std::shared_ptr<const SegmentMapping> mapping;  // null if refused
    absl::Status refused;
  };

  absl::StatusOr<AllocatedBuffer> AllocateOnce(size_t size);
  absl::StatusOr<AllocatedBuffer> AllocateLocked(size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFreeLocked(uint32_t key, Allocation& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t NextIdLocked(uint32_t* counter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PoolFullLocked(size_t size) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string description_;
  const SharedBufferLimits limits_;
  const FrameWriter write_;
  std::function<void()> read_waiting_;  // set before the session is shared

  mutable internal::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t next_segment_ ABSL_GUARDED_BY(mu_) = 1;
  uint32_t next_key_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint32_t, OwnSegment> own_ ABSL_GUARDED_BY(mu_);
  uint64_t own_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint32_t, Allocation> allocations_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, PeerSegment> peer_ ABSL_GUARDED_BY(mu_);
  uint64_t peer_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> releases_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> has_releases_{false};  // !releases_.empty(), read without mu_
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_SESSION_H_
