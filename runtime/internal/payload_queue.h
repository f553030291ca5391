// ipcrpc internal: the queue of received message payloads of one stream.
//
// A unary call queues exactly one payload, and a stream is created per call,
// so the queue must cost nothing to create: the first payload is stored
// inline (std::deque would allocate two blocks for every stream, queued
// message or not). Longer queues (streaming) spill into a heap array whose
// consumed front is reclaimed as it is read, so pop_front stays O(1)
// amortized.
//
// Thread-safety: none; guarded by the owning connection's mutex.

#ifndef IPCRPC_RUNTIME_INTERNAL_PAYLOAD_QUEUE_H_
#define IPCRPC_RUNTIME_INTERNAL_PAYLOAD_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace ipcrpc::internal {

class PayloadQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }

  // `compression`: the payload's compression algorithm id (wire/compression.h).
  void push_back(std::string payload, uint8_t compression = 0) {
    items_.push_back(Item{std::move(payload), compression});
  }

  // Requires !empty().
  std::string& front() { return items_[head_].payload; }
  uint8_t front_compression() const { return items_[head_].compression; }

  // Requires !empty().
  void pop_front() {
    items_[head_].payload = std::string();  // release the payload's memory now
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ >= kCompactAfter && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  static constexpr size_t kCompactAfter = 64;  // consumed slots before moving the rest down

  struct Item {
    std::string payload;
    uint8_t compression;
  };
  absl::InlinedVector<Item, 1> items_;
  size_t head_ = 0;  // items_[0, head_) are consumed
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_PAYLOAD_QUEUE_H_
