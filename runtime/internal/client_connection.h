// ipcrpc internal: the client end of one connection, and its streams.
//
// Threading model ("leader/follower", no reader thread): a thread that waits
// for something on a stream (a response, the trailers, flow-control credit)
// reads frames from the transport itself if no other thread is reading, and
// dispatches frames for other streams to them as it goes; otherwise it sleeps
// on its stream's condition variable until the reader hands it a frame or
// the reading role. When the only call in flight reads its own reply, no
// thread hand-off happens at all. Asynchronous unary calls are completed by
// the connection's AsyncPoller (async_poller.h), whose thread exists only
// while such calls are pending and takes part in reading like any waiter.
//
// All stream state is guarded by the connection's mutex `mu_`. Lock order:
// start_mu_, then ClientContext::mu_, then mu_; the write lock inside
// FramedConnection is never held while taking mu_.

#ifndef IPCRPC_RUNTIME_INTERNAL_CLIENT_CONNECTION_H_
#define IPCRPC_RUNTIME_INTERNAL_CLIENT_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/channel.h"
#include "runtime/internal/async_poller.h"
#include "runtime/client_context.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/internal/framed_connection.h"
#include "runtime/internal/payload_queue.h"
#include "runtime/internal/shared_buffer_session.h"
#include "runtime/method.h"

namespace ipcrpc::internal {

class ClientConnection;

// One call as the client sees it. Implements ClientCall for the typed API.
class ClientStream final : public ClientCall {
 public:
  ~ClientStream() override;

  absl::Status Write(const google::protobuf::MessageLite& message) override;
  absl::Status WritesDone() override;
  bool Read(google::protobuf::MessageLite* message) override;
  absl::Status Finish() override;
  void Cancel() override;

  // Ends the call locally with `status` (and tells the server to stop).
  void Fail(absl::Status status);

 private:
  friend class AsyncPoller;
  friend class ClientConnection;
  ClientStream(std::shared_ptr<ClientConnection> connection, uint32_t id,
               ClientContext* context);
  // Parses a received payload into *message; the descriptors that came with
  // it go to the context (PROTOCOL.md §10). false if it does not parse.
  bool Parse(const std::string& payload, std::vector<ScopedFd> fds,
             std::vector<ReceivedBuffer> buffers, google::protobuf::MessageLite* message);

  const std::shared_ptr<ClientConnection> connection_;
  const uint32_t id_;
  ClientContext* const context_;  // may be null for internal calls
  const absl::Time deadline_;
  // Requests go compressed with this algorithm id (wire/compression.h; 0:
  // not); set by StartStream, before anything is sent.
  uint8_t compression_ = 0;

  // Guarded by connection_->mu_.
  PayloadQueue inbox_;
  bool done_ = false;          // trailers received or failed locally
  absl::Status final_status_;  // valid once done_
  bool writes_done_ = false;
  int64_t send_window_ = 0;   // bytes we may still send
  uint32_t unacked_bytes_ = 0;  // consumed but not yet credited back
  // The server's send window as we track it (PROTOCOL.md §7): our
  // initial_stream_window plus the CREDIT sent, minus the payloads received.
  int64_t receive_window_ = 0;
  int waiters_ = 0;
  internal::CondVar cv_;
  // The reading thread only: the last message read came with descriptors,
  // which the context may still hold.
  bool received_fds_ = false;
  // Likewise for shared buffers.
  bool received_buffers_ = false;
};

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  // Exchanges HELLO over `transport`; UNAVAILABLE if the peer goes away.
  static absl::StatusOr<std::shared_ptr<ClientConnection>> Establish(
      std::unique_ptr<Transport> transport, const ChannelOptions& options,
      absl::Time deadline);
  ~ClientConnection();

  // false once the connection broke or the server sent GOAWAY.
  bool usable() const { return usable_.load(std::memory_order_acquire); }

  // As usable(), and also false when the connection has been quiet for a
  // while (kQuietBeforeProbe: nothing received) and the transport reports
  // that the peer has gone (a server killed while the channel was idle):
  // such a connection is broken here instead of failing the next call.
  // A connection in steady use pays one coarse clock read, no system call.
  bool UsableForNewCall();

  // Opens a stream and sends CALL_START, plus `first_request` and the
  // half-close if given, in one write. Never null: a failure is recorded in
  // the stream (Finish() returns it).
  std::unique_ptr<ClientStream> StartStream(
      const MethodDescriptor& method, ClientContext* context,
      const google::protobuf::MessageLite* first_request, bool half_close);

  // Hands an asynchronous unary call to the poller, which completes it:
  // `done` runs once, on the poller thread, after *response was filled in.
  void StartAsync(std::unique_ptr<ClientStream> stream,
                  google::protobuf::MessageLite* response,
                  std::function<void(absl::Status)> done) {
    poller_.Add(std::move(stream), response, std::move(done));
  }

  const std::string& description() const { return *description_; }
  // The connection's shared buffers; null when either side did not announce
  // them (PROTOCOL.md §13).
  const std::shared_ptr<SharedBufferSession>& shared_buffers() const { return shared_buffers_; }
  PeerCredentials peer() { return framed_.transport().peer(); }

 private:
  friend class AsyncPoller;
  friend class ClientStream;

  ClientConnection(std::unique_ptr<Transport> transport, const ChannelOptions& options);

  // Blocks until ready() holds, the connection breaks, or `deadline` passes
  // (returns false only for the deadline). Reads frames itself when no other
  // thread is reading. `stream` is where this thread sleeps (null: poller).
  bool AwaitLocked(ClientStream* stream, const std::function<bool()>& ready,
                   absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleFrameLocked(Frame& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeOneWaiterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishStreamLocked(ClientStream* stream, absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BreakLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GoAwayLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads and applies the frames already waiting, without waiting for
  // more; nothing if another thread is reading (it applies them).
  void ReadWaitingFrames();
  // Sends a frame without payload; errors surface through the reader.
  void SendControl(FrameType type, uint32_t stream_id, absl::string_view payload = {});
  void FlushPendingControl();
  // Whether the shared-buffer session has releases to send (the reader then
  // drops mu_ to flush them).
  bool QueuedReleases() const {
    return shared_buffers_ != nullptr && shared_buffers_->HasQueuedReleases();
  }
  absl::Status ReceivedMessageError(size_t size) const;
  // The compression algorithm id for a call with `context`: what the call
  // or the channel asks for, if the server accepts it; else 0.
  uint8_t RequestCompression(const ClientContext* context) const;
  // RESOURCE_EXHAUSTED if a request of `size` bytes may not be sent.
  absl::Status CheckSendSize(size_t size) const;

  FramedConnection framed_;
  const ChannelOptions options_;
  const std::shared_ptr<const std::string> description_;  // shared with ClientContexts
  wire::Hello peer_hello_;  // set by Establish, then immutable
  std::shared_ptr<SharedBufferSession> shared_buffers_;  // set by Establish, then immutable
  // Applies SEGMENT, SEGMENT_RETIRE and BUFFER_RELEASE (stream 0).
  void HandleSharedBufferFrameLocked(Frame& frame, std::vector<ScopedFd> fds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Descriptors in the streams' inboxes (kMaxQueuedFdsPerConnection). The
  // streams hold the connection, so it outlives their inboxes.
  QueuedFdCount queued_fds_;

  internal::Mutex start_mu_;  // serializes StartStream (ids go out in order)
  internal::Mutex mu_;
  absl::flat_hash_map<uint32_t, ClientStream*> streams_ ABSL_GUARDED_BY(mu_);
  uint32_t next_stream_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  int total_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  bool going_away_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> usable_{true};  // broken_.ok() && !going_away_, readable without mu_
  // When a frame last arrived (CoarseMonotonicMillis), for UsableForNewCall.
  std::atomic<int64_t> last_frame_ms_{0};
  std::string pending_control_ ABSL_GUARDED_BY(mu_);  // frames to send after unlocking
  // Completes asynchronous calls (async_poller.h); its state is under mu_.
  AsyncPoller poller_;
  // The frame being read by the thread holding the reading role (reused, so
  // its payload's memory is too).
  Frame read_frame_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_CLIENT_CONNECTION_H_
