// ipcrpc: the shared buffers one call holds.
//
// Every ClientContext and ServerContext holds one (`ctx->buffers()`), with
// two kinds of buffers, like CallFds (runtime/call_fds.h):
//   * received: the references that came with the last message read on the
//     call. ipcrpc::TakeSharedBuffer moves one out as a SharedBufferView; the
//     others are released (the sender may reuse their space) when the next
//     message of the call is read, when a server call finishes, or when the
//     context is destroyed.
//   * kept for sending: ipcrpc::AttachSharedBuffer hands a writer to the call
//     so that the buffer stays allocated until the message naming it has been
//     sent (a unary handler's response goes after the handler returns); kept
//     writers are destroyed with the context.
// A call that never meets a shared buffer allocates nothing here.
//
// Thread-safety: all methods may be called from any thread.

#ifndef IPCRPC_RUNTIME_CALL_BUFFERS_H_
#define IPCRPC_RUNTIME_CALL_BUFFERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/sync.h"

namespace ipcrpc {

class SharedBufferView;
class SharedBufferWriter;
namespace internal {
class ReceivedBuffer;
class SharedBufferSession;
}  // namespace internal

class CallBuffers {
 public:
  CallBuffers();
  ~CallBuffers();
  CallBuffers(const CallBuffers&) = delete;
  CallBuffers& operator=(const CallBuffers&) = delete;

  // The buffer a received ipcrpc.SharedBuffer field names (its handle).
  // NOT_FOUND if it names none, was taken already, was released because a
  // later message was read, or was not received (a field this side set).
  absl::StatusOr<SharedBufferView> Take(uint32_t handle);
  // How many received buffers are held (not taken yet).
  size_t received() const;
  // Keeps `writer` (its buffer allocated) until the context is destroyed.
  void Keep(SharedBufferWriter writer);

  // Runtime: the references of a newly read message; received ones still
  // held are released (and the releases sent).
  void Replace(std::vector<internal::ReceivedBuffer> buffers);
  // Runtime: releases the received references not taken (no frame is
  // written; the caller flushes the session).
  void DropReceived();
  // Runtime (server): the connection's session, for AllocateSharedBuffer.
  void set_session(std::shared_ptr<internal::SharedBufferSession> session);
  const std::shared_ptr<internal::SharedBufferSession>& session() const { return session_; }

 private:
  struct State;
  State& StateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable internal::Mutex mu_;
  std::unique_ptr<State> state_ ABSL_GUARDED_BY(mu_);  // made on first use
  // Set once state_ exists: a call that never sees a shared buffer (nearly
  // every call) reads messages without taking mu_.
  std::atomic<bool> has_state_{false};
  std::shared_ptr<internal::SharedBufferSession> session_;  // set before the handler runs
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CALL_BUFFERS_H_
