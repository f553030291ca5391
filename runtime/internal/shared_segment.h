// ipcrpc internal: one shared-buffer segment — a sealed memfd and its mapping.
//
// The owner creates a segment (memfd_create with MFD_ALLOW_SEALING |
// MFD_CLOEXEC, sized once, sealed F_SEAL_SHRINK | F_SEAL_GROW, mapped
// read/write, then sealed F_SEAL_FUTURE_WRITE | F_SEAL_SEAL, so its one
// mapping is the only one that can ever write); the peer receives the descriptor (PROTOCOL.md §13),
// checks that it is such a memfd of the announced size and maps it
// read-only. Either way the descriptor is closed once mapped: the mapping
// keeps the pages, and they are freed when the last mapping (in either
// process) goes. Nothing has a name in any file system.
//
// Thread-safety: immutable after creation. Ownership: a SegmentMapping
// unmaps in its destructor; share it (std::shared_ptr) to keep bytes alive.

#ifndef IPCRPC_RUNTIME_INTERNAL_SHARED_SEGMENT_H_
#define IPCRPC_RUNTIME_INTERNAL_SHARED_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"

namespace ipcrpc::internal {

// The seals a peer requires (F_SEAL_SEAL is added by the owner but not
// required: the other two already make the size final).
int RequiredSegmentSeals();

class SegmentMapping {
 public:
  SegmentMapping(uint8_t* base, size_t size) : base_(base), size_(size) {}
  ~SegmentMapping();
  SegmentMapping(const SegmentMapping&) = delete;
  SegmentMapping& operator=(const SegmentMapping&) = delete;

  uint8_t* data() const { return base_; }
  size_t size() const { return size_; }

 private:
  uint8_t* const base_;
  const size_t size_;
};

// A new segment of `size` bytes mapped read/write, and its descriptor (to
// send, then close). RESOURCE_EXHAUSTED when the system has no memory or
// descriptors for it.
struct OwnedSegment {
  std::shared_ptr<SegmentMapping> mapping;
  ScopedFd fd;
};
absl::StatusOr<OwnedSegment> CreateSegment(size_t size);

// Maps a segment received from a peer, read-only, after checking that `fd`
// is a memfd sealed against shrinking and growing whose size is exactly
// `size` (so no access inside [0, size) can fault). INVALID_ARGUMENT (saying
// which check failed) otherwise.
absl::StatusOr<std::shared_ptr<const SegmentMapping>> MapPeerSegment(int fd, uint64_t size);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SHARED_SEGMENT_H_
