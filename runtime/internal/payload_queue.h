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

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <vector>

#include "absl/container/inlined_vector.h"
#include "base/scoped_fd.h"
#include "runtime/internal/shared_buffer_session.h"

namespace ipcrpc::internal {

// The descriptors one connection holds in its streams' queues, with a cap:
// messages that the application has not read yet cannot make this process
// hold more than that many descriptors for a peer (PROTOCOL.md §10).
class QueuedFdCount {
 public:
  // Counts `n` more; false (nothing counted) if that would pass `limit`.
  bool TryAdd(size_t n, size_t limit) {
    size_t now = count_.load(std::memory_order_relaxed);
    do {
      if (now + n > limit) return false;
    } while (!count_.compare_exchange_weak(now, now + n, std::memory_order_relaxed));
    return true;
  }
  void Release(size_t n) { count_.fetch_sub(n, std::memory_order_relaxed); }
  size_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::atomic<size_t> count_{0};
};

// The most descriptors a connection holds in its streams' queues.
inline constexpr size_t kMaxQueuedFdsPerConnection = 1024;

// One received MESSAGE: its payload and the descriptors that came with it
// (closed with it unless the reader takes them).
struct ReceivedPayload {
  std::string payload;
  std::vector<ScopedFd> fds;
  QueuedFdCount* counted_in = nullptr;  // where fds.size() was counted
  size_t counted = 0;
  uint8_t compression = 0;  // the payload's compression algorithm id
  // The shared buffers the MESSAGE referenced (PROTOCOL.md §13), resolved as
  // it arrived; their table was cut from `payload`, and `table_bytes` says
  // how long it was (flow-control credit counts it).
  std::vector<ReceivedBuffer> buffers;
  uint32_t table_bytes = 0;
};

class PayloadQueue {
 public:
  PayloadQueue() = default;
  PayloadQueue(const PayloadQueue&) = delete;
  PayloadQueue& operator=(const PayloadQueue&) = delete;
  ~PayloadQueue() {
    for (size_t i = head_; i < items_.size(); ++i) Uncount(items_[i]);
  }

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }

  // `compression`: the payload's compression algorithm id (wire/compression.h).
  // `fds`, if any, were counted in *counted_in (QueuedFdCount::TryAdd); they
  // are released from it when their message leaves the queue.
  // `buffers`: the message's shared buffers, whose table of `table_bytes`
  // was cut from the payload.
  void push_back(std::string payload, uint8_t compression = 0, std::vector<ScopedFd> fds = {},
                 QueuedFdCount* counted_in = nullptr, std::vector<ReceivedBuffer> buffers = {},
                 uint32_t table_bytes = 0) {
    const size_t n = fds.size();
    items_.push_back(ReceivedPayload{std::move(payload), std::move(fds),
                                     n > 0 ? counted_in : nullptr, n, compression,
                                     std::move(buffers), table_bytes});
  }

  // Requires !empty().
  ReceivedPayload& front() { return items_[head_]; }
  uint8_t front_compression() const { return items_[head_].compression; }

  // Requires !empty().
  void pop_front() {
    Uncount(items_[head_]);
    items_[head_] = ReceivedPayload();  // release the payload's memory (and fds) now
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

  static void Uncount(ReceivedPayload& item) {
    if (item.counted_in != nullptr) item.counted_in->Release(item.counted);
    item.counted_in = nullptr;
  }

  absl::InlinedVector<ReceivedPayload, 1> items_;
  size_t head_ = 0;  // items_[0, head_) are consumed
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_PAYLOAD_QUEUE_H_
