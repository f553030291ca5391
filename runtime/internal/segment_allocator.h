// ipcrpc internal: first-fit allocation of byte ranges within one segment.
//
// Ranges are kAlignment-aligned and rounded up to it; freed ranges merge
// with free neighbours. Pure bookkeeping of offsets (no memory is touched).
//
// Thread-safety: none; the owning SharedBufferSession locks.
//
//   SegmentAllocator a(64 << 20);
//   std::optional<uint64_t> at = a.Allocate(1000);   // 0
//   a.Free(*at);

#ifndef IPCRPC_RUNTIME_INTERNAL_SEGMENT_ALLOCATOR_H_
#define IPCRPC_RUNTIME_INTERNAL_SEGMENT_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

namespace ipcrpc::internal {

class SegmentAllocator {
 public:
  static constexpr uint64_t kAlignment = 64;  // a cache line: buffers never share one

  explicit SegmentAllocator(uint64_t size);

  // The offset of a new range of at least `size` bytes (size > 0), or
  // nullopt if no free range is large enough.
  std::optional<uint64_t> Allocate(uint64_t size);
  // Frees the range that Allocate returned at `offset`.
  void Free(uint64_t offset);

  uint64_t size() const { return size_; }
  uint64_t used() const { return used_; }
  bool empty() const { return used_ == 0; }

 private:
  const uint64_t size_;
  uint64_t used_ = 0;
  std::map<uint64_t, uint64_t> free_;       // offset → length
  std::map<uint64_t, uint64_t> allocated_;  // offset → length
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SEGMENT_ALLOCATOR_H_
