// ipcrpc: the two handles of a shared buffer — SharedBufferWriter (the
// sender's, writable) and SharedBufferView (the receiver's, read-only) — and
// allocation. The field functions (SetSharedBuffer, TakeSharedBuffer, …) and
// the overview with an example are in runtime/shared_buffer.h; include that.
//
// Thread-safety: allocation is thread-safe; a writer or view is used by one
// thread at a time (the bytes are plain memory).

#ifndef IPCRPC_RUNTIME_SHARED_BUFFER_VIEW_H_
#define IPCRPC_RUNTIME_SHARED_BUFFER_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/channel.h"
#include "runtime/server_context.h"

namespace ipcrpc {

namespace internal {
class ReceivedBuffer;
class SegmentMapping;
class SharedBufferAccess;
class SharedBufferSession;
}  // namespace internal

// A buffer this process allocated and may write. Move-only; the buffer stays
// allocated while a writer (or a reference sent to the peer) holds it.
class SharedBufferWriter {
 public:
  SharedBufferWriter() = default;
  SharedBufferWriter(SharedBufferWriter&& other) noexcept;
  SharedBufferWriter& operator=(SharedBufferWriter&& other) noexcept;
  ~SharedBufferWriter();

  absl::Span<uint8_t> data() const { return absl::MakeSpan(data_, size_); }
  size_t size() const { return size_; }
  bool valid() const { return key_ != 0; }
  // What SetSharedBuffer puts in a field (0 for an invalid writer).
  uint32_t handle() const { return key_; }

 private:
  friend class internal::SharedBufferAccess;
  void Reset();

  std::shared_ptr<internal::SharedBufferSession> session_;
  std::shared_ptr<internal::SegmentMapping> mapping_;
  uint32_t key_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A buffer received from the peer, read in place. Move-only; destroying it
// tells the sender it may reuse the space.
class SharedBufferView {
 public:
  SharedBufferView() = default;
  SharedBufferView(SharedBufferView&&) noexcept;
  SharedBufferView& operator=(SharedBufferView&&) noexcept;
  ~SharedBufferView();

  absl::Span<const uint8_t> data() const;
  size_t size() const { return data().size(); }
  // A private copy of the bytes as they are now: validate this, not data(),
  // when the sender is not trusted (it may change the shared bytes at any
  // time).
  std::string Snapshot() const;

 private:
  friend class CallBuffers;
  explicit SharedBufferView(std::unique_ptr<internal::ReceivedBuffer> hold);
  std::unique_ptr<internal::ReceivedBuffer> hold_;
};

// A new buffer of `size` bytes (≥ 1) in the pool of the channel's connection
// (connecting if needed). FAILED_PRECONDITION if the server does not take
// shared buffers; RESOURCE_EXHAUSTED at the pool's cap
// (ChannelOptions::shared_buffer_pool_bytes); UNAVAILABLE if the server
// cannot be reached. A buffer belongs to that connection: sending it on
// another (after a reconnect) fails INVALID_ARGUMENT.
absl::StatusOr<SharedBufferWriter> AllocateSharedBuffer(Channel& channel, size_t size);
// The same in a server handler, from the pool of the call's connection
// (ServerOptions::shared_buffer_pool_bytes).
absl::StatusOr<SharedBufferWriter> AllocateSharedBuffer(ServerContext* context, size_t size);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SHARED_BUFFER_VIEW_H_
