// ipcrpc internal: the server end of one connection.
//
// A ServerConnection reads frames from one transport and turns them into
// calls (ServerStream). Its ReadingRole decides which of its threads reads:
// the first thread exchanges HELLO and reads; a unary or server-streaming
// call whose request is complete runs on the reading thread itself (inline),
// up to the server's limit on inline handlers (ServerCore::watchdog());
// beyond that, and for client-streaming and bidi calls, the handler is
// scheduled on the server's pool. See reading_role.h for how the connection
// keeps being read while an inline handler runs.
//
// Thread-safety: every public method is thread-safe. `mu_` guards the stream
// table and every ServerStream's mutable state; it is taken after
// ServerCore::mu_ and is never held during a transport write. The
// ReadingRole's lock is a leaf below it.
//
// Ownership: owned (shared) by ServerCore's connection list and by each of
// its streams; the ServerCore outlives it.

#ifndef IPCRPC_RUNTIME_INTERNAL_SERVER_CONNECTION_H_
#define IPCRPC_RUNTIME_INTERNAL_SERVER_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/internal/framed_connection.h"
#include "runtime/codegen/method_handler.h"
#include "runtime/internal/reading_role.h"
#include "runtime/internal/payload_queue.h"
#include "runtime/internal/server_stream.h"
#include "runtime/internal/event_loop.h"
#include "runtime/internal/shared_buffer_session.h"
#include "transports/transport.h"

namespace ipcrpc::internal {

class ServerCore;

class ServerConnection : public EventLoop::Watcher,
                         public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(ServerCore& core, std::unique_ptr<Transport> transport);
  ~ServerConnection();

  // Starts reading (the first thread exchanges HELLO). RESOURCE_EXHAUSTED if
  // the connection's thread cannot start: nothing reads it then; Refuse() it.
  absl::Status Start();
  // Tells the client why its connection is not served (the refusal GOAWAY
  // before HELLO, wire/refusal.h) and closes the transport. For a connection
  // whose Start() failed.
  void Refuse(const absl::Status& status);
  // Refuses new calls and tells the client (GOAWAY).
  // Waits for a write in progress no longer than `deadline`.
  void GoAway(absl::string_view reason, absl::Time deadline);
  // Cancels every call in flight.
  void CancelAll();
  // Closes the transport; the reading threads end. Then Join().
  void Close();
  void Join();
  bool finished();  // closed, every thread gone, no stream left
  // The peer's uid (per-uid connection accounting).
  uid_t peer_uid() const { return peer_uid_; }

  // Called by the server's housekeeping thread only, every tick: closes the
  // connection if it has had no calls for idle_timeout, or pings it after
  // keepalive_time without calls and closes it if the PING is not answered
  // within keepalive_timeout.
  void CheckIdle(absl::Time now);

  // Called by the server's watchdog (ReadingRole::Watchdog).
  void HandOffIfOrphaned(absl::Time released_before) {
    reading_role_.HandOffIfOrphaned(released_before);
  }

 private:
  friend class ServerStream;
  // What every thread of the connection runs: the first exchanges HELLO and
  // reads; the others wait for the reading role. Each reads until it has run
  // a handler inline, then asks for the role again.
  void ThreadMain(bool first);
  bool Handshake();
  // After HELLO: if the server has an event loop and the transport a
  // readiness fd, the connection is read in loop turns from now on, and the
  // reading role parks in the loop whenever nothing is left to read.
  void EnableParkingIfPossible();
  // A loop turn (EventLoop::Watcher): the fd is readable.
  void OnReadable() override;
  // Reads while this thread holds the reading role; after each handler run
  // inline, takes the role back (event-loop mode: only if nobody took it).
  // `readable`: the transport was just reported readable.
  void ReadWhileHoldingRole(bool readable);
  enum class ReadEnd { kHandlerRanInline, kParked, kEnded };
  // Reads until a handler has run inline, the role parked in the event loop
  // (nothing left to read), or the connection ended.
  ReadEnd ReadUntilHandlerRanInline(bool readable);
  void EndConnection();

  // Applies a frame; a call whose handler may start now is returned in *ready.
  void HandleFrame(Frame& frame, std::shared_ptr<ServerStream>* ready,
                   MethodHandler** ready_handler);
  // Applies a frame to its stream; false if it changed nothing. A CANCEL
  // returns the call's child calls (if any) in *cancelled_children, to be
  // cancelled once mu_ is released.
  // `buffers`/`buffers_status`: a MESSAGE's shared buffers, resolved before.
  bool HandleStreamFrameLocked(ServerStream& stream, Frame& frame,
                               std::shared_ptr<ChildCalls>* cancelled_children,
                               std::vector<ReceivedBuffer>& buffers,
                               const absl::Status& buffers_status, size_t wire_size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a call; a streaming callback call, which starts at once, is
  // returned in *ready (its method to run in *ready_handler).
  void StartCall(uint32_t stream_id, const Frame& frame, std::shared_ptr<ServerStream>* ready,
                 MethodHandler** ready_handler);
  void RefuseCall(uint32_t stream_id, const absl::Status& status);
  void StreamFinished(ServerStream* stream);
  // Hands the stream's handler to the thread pool. A streaming handler
  // (counted in streaming_handlers_) gives its count back when it returns.
  void RunHandler(std::shared_ptr<ServerStream> stream, MethodHandler* handler,
                  bool streaming = false);
  // Hands the streaming calls whose start was deferred (deferred_streams_)
  // and are not yet ready to the pool.
  void DispatchDeferredStreams();

  ServerCore& core_;
  const uid_t peer_uid_;
  // Event-loop mode (set once, after HELLO, before the role first parks).
  std::atomic<bool> parking_{false};
  // Set after HELLO (before parking is enabled), then immutable.
  std::optional<EventLoop::Registration> registration_;
  FramedConnection framed_;
  wire::Hello peer_hello_;
  // The connection's shared buffers (PROTOCOL.md §13); set by Handshake when
  // both sides announced them, then immutable; null otherwise.
  std::shared_ptr<SharedBufferSession> shared_buffers_;
  // SEGMENT, SEGMENT_RETIRE, BUFFER_RELEASE (stream 0); false: a protocol
  // violation (the caller closes the connection).
  bool HandleSharedBufferFrame(Frame& frame);
  // Descriptors in the streams' inboxes (kMaxQueuedFdsPerConnection). Must
  // outlive the streams: they hold the connection.
  QueuedFdCount queued_fds_;

  internal::Mutex mu_;
  absl::flat_hash_map<uint32_t, std::shared_ptr<ServerStream>> streams_ ABSL_GUARDED_BY(mu_);
  uint32_t last_stream_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool going_away_ ABSL_GUARDED_BY(mu_) = false;
  // Client-streaming/bidi handlers of this connection on the pool (running
  // or queued). Raised under mu_ (in StartCall), lowered without it.
  std::atomic<uint32_t> streaming_handlers_{0};
  // Client-streaming/bidi calls whose handler waits while the frames read
  // with their CALL_START are applied: one whose half-close is among them
  // (every request already here) then runs inline like a unary call, the
  // others go to the pool before the reader next waits for bytes. The
  // reading role's holder only.
  std::vector<std::weak_ptr<ServerStream>> deferred_streams_;
  // Set once HELLO is exchanged (before, only HELLO may be sent).
  std::atomic<bool> hello_done_{false};
  // A PING ack arrived (set by the reader; CheckIdle clears it).
  std::atomic<bool> ping_acked_{false};
  // CheckIdle's own state (only the housekeeping thread touches it).
  uint32_t idle_check_stream_id_ = 0;
  absl::Time idle_since_ = absl::InfinitePast();
  absl::Time ping_sent_at_ = absl::InfinitePast();  // InfinitePast: none outstanding
  absl::Time pinged_ok_at_ = absl::InfinitePast();
  // The frame being read by the thread holding the reading role (reused, so
  // its payload's memory is too).
  Frame read_frame_;
  // Last member: destroyed (its threads joined) first.
  ReadingRole reading_role_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SERVER_CONNECTION_H_
