#include "runtime/internal/segment_allocator.h"

#include <iterator>

namespace ipcrpc::internal {

SegmentAllocator::SegmentAllocator(uint64_t size) : size_(size - size % kAlignment) {
  if (size_ > 0) free_[0] = size_;
}

std::optional<uint64_t> SegmentAllocator::Allocate(uint64_t size) {
  if (size == 0 || size > size_) return std::nullopt;
  const uint64_t need = (size + kAlignment - 1) / kAlignment * kAlignment;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < need) continue;
    const uint64_t offset = it->first;
    const uint64_t rest = it->second - need;
    free_.erase(it);
    if (rest > 0) free_[offset + need] = rest;
    allocated_[offset] = need;
    used_ += need;
    return offset;
  }
  return std::nullopt;
}

void SegmentAllocator::Free(uint64_t offset) {
  auto a = allocated_.find(offset);
  if (a == allocated_.end()) return;
  uint64_t start = offset;
  uint64_t length = a->second;
  used_ -= length;
  allocated_.erase(a);
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + length) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  free_[start] = length;
}

}  // namespace ipcrpc::internal
