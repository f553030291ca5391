// ipcrpc internal: one call as the server sees it.
//
// A ServerStream is created by its ServerConnection when CALL_START arrives
// and lives as long as anyone holds it: the connection's stream table until
// the call is finished, the handler while it runs. It implements ServerCall
// for the typed API (runtime/sync_stream.h, method_handler.h) and carries the
// call's ServerContext.
//
// Thread-safety: the handler's thread calls Read/Write/Finish; the thread
// holding the connection's reading role applies frames to the stream
// (ServerConnection::HandleStreamFrameLocked); cancelled() may be called from
// any thread. All mutable state below is guarded by the connection's mutex
// (ServerConnection::mu_), which is never held during a transport write.
//
// Ownership: the stream holds its connection (shared), so the connection
// outlives every stream. Child calls made with
// ClientContext::FromServerContext share the stream's ChildCalls, which may
// outlive the stream.

#ifndef IPCRPC_RUNTIME_INTERNAL_SERVER_STREAM_H_
#define IPCRPC_RUNTIME_INTERNAL_SERVER_STREAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/internal/call_limits.h"
#include "runtime/internal/child_calls.h"
#include "runtime/codegen/method_handler.h"
#include "runtime/internal/deadline_timer.h"
#include "runtime/internal/payload_queue.h"
#include "runtime/metadata.h"
#include "runtime/server_context.h"

namespace ipcrpc::internal {

class ServerConnection;

// Control frames (refusals, pings, credit, trailers) give up writing after this.
inline constexpr absl::Duration kControlWriteTimeout = absl::Seconds(5);

// Appends a TRAILERS frame with `status` and `metadata` to *out; a
// `metadata` over `limits` is not sent and the status becomes
// RESOURCE_EXHAUSTED.
void AppendTrailers(uint32_t stream_id, absl::Status status, const Metadata& metadata,
                    const MetadataLimits& limits, std::string* out);

class ServerStream final : public ServerCall,
                           public ServerReactorCall,
                           public std::enable_shared_from_this<ServerStream> {
 public:
  // `method` must outlive the stream (it is the registered method's name).
  ServerStream(std::shared_ptr<ServerConnection> connection, uint32_t id,
               absl::string_view method, absl::Time deadline, Metadata client_metadata);

  bool Read(google::protobuf::MessageLite* message) override;
  bool AtEndOfStream() override;
  bool ClientHalfClosed(size_t* queued) override;
  void EndReads() override;
  bool Write(const google::protobuf::MessageLite& message) override;
  bool SendInitialMetadata() override;
  void Finish(const absl::Status& status,
              const google::protobuf::MessageLite* last_message) override;
  ServerContext& context() override { return context_; }
  absl::Status StatusToSend(const absl::Status& status) override;

  // A call served by a reactor (runtime/server_callback.h); the reactor's
  // side is in server_stream_reactor.cc.
  void StartReactor(absl::FunctionRef<ServerReactor*()> make, std::shared_ptr<void> state,
                    const google::protobuf::MessageLite* response) override;
  void StartSendInitialMetadata() override;
  void StartRead(google::protobuf::MessageLite* message) override;
  void StartWrite(const google::protobuf::MessageLite* message) override;
  void StartWriteAndFinish(const google::protobuf::MessageLite* message,
                           absl::Status status) override;
  void Finish(absl::Status status) override;
  // Runs the reactor's due operations and reactions until none is left; the
  // caller has claimed the right to (ClaimReactionsLocked returned true).
  void RunReactions();

  // The client cancelled, the connection ended, the server cancelled the
  // call at shutdown, or the deadline passed.
  // A generic call (runtime/generic_service.h) has no registered name to
  // point at: the stream keeps its own copy of the wire name.
  void KeepMethodName(absl::string_view method);
  bool cancelled() const;
  // After the handler returned: ends a call the handler did not finish
  // (INTERNAL). Costs nothing when it did.
  void FinishIfHandlerDidNot();

  // The registry of this call's child calls (ClientContext::FromServerContext),
  // made on first use; *cancelled says whether this call has been cancelled
  // already (the caller then cancels the child itself).
  std::shared_ptr<ChildCalls> child_calls(bool* cancelled) const;

 private:
  friend class ServerConnection;
  // RESOURCE_EXHAUSTED if a response of `size` bytes may not be sent.
  absl::Status CheckSendSize(size_t size) const;
  // The compression algorithm id for responses now: the call's choice
  // (ServerContext) if the client accepts it, else 0.
  uint8_t ResponseCompression() const;
  // Appends HEADERS to *out if initial metadata has not gone out yet;
  // RESOURCE_EXHAUSTED (nothing appended) if it exceeds the metadata limits.
  absl::Status AppendHeadersLocked(std::string* out);
  // Marks the call cancelled. Returns its child calls, to be cancelled once
  // the connection's mutex is released (null if it has none: most calls).
  std::shared_ptr<ChildCalls> CancelLocked();

  // A reactor-served call's state (null for the others); under
  // connection_->mu_.
  struct Reactor {
    ServerReactor* reactor = nullptr;  // null while the method that makes it runs
    std::shared_ptr<void> state;       // the request/response objects, until OnDone
    const google::protobuf::MessageLite* response = nullptr;  // sent by an OK Finish
    google::protobuf::MessageLite* read_into = nullptr;       // a read in progress
    const google::protobuf::MessageLite* write_from = nullptr;  // a write in progress
    bool write_then_finish = false;    // StartWriteAndFinish
    bool headers_requested = false;
    bool finish_requested = false;
    absl::Status finish_status;
    bool cancel_reported = false;
    bool done = false;     // OnDone has been taken: nothing follows
    bool running = false;  // a thread runs RunReactions
    std::optional<DeadlineTimer::Id> deadline_task;
  };
  enum class ReactorStep {
    kNone, kCancel, kHeaders, kRead, kWrite, kWriteAndFinish, kFinish, kDone
  };
  // The next operation or reaction due; `take` marks it taken.
  ReactorStep NextReactorStepLocked(bool take);  // under connection_->mu_
  // true if the caller must now RunReactions (something is due and nobody
  // runs them); it then has the right to until RunReactions returns.
  bool ClaimReactionsLocked();  // under connection_->mu_
  // RunReactions on the server's pool.
  void ScheduleReactions();
  // The deadline timer's task: the reactor learns of the deadline at once.
  void DeadlineReached();

  const std::shared_ptr<ServerConnection> connection_;
  const uint32_t id_;
  std::string kept_method_;  // see KeepMethodName
  CallbackServerContext context_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finish_called_{false};  // Finish() has been entered

  // Guarded by connection_->mu_.
  PayloadQueue inbox_;
  bool half_closed_ = false;
  bool reads_ended_ = false;  // EndReads()
  bool headers_sent_ = false;
  bool finished_ = false;
  int64_t send_window_ = 0;
  // The client's send window as this side tracks it (PROTOCOL.md §7): our
  // initial_stream_window plus the CREDIT sent, minus the payloads received.
  // A MESSAGE arriving while it is <= 0 fails the stream, so at most window +
  // one max message is ever buffered.
  int64_t receive_window_ = 0;
  uint32_t unacked_bytes_ = 0;
  absl::Status forced_status_;  // overrides the handler's status when set
  // Single-request methods start their handler once the request is complete
  // (half-close), so the handler thread is woken once, not once per frame.
  MethodHandler* deferred_handler_ = nullptr;
  // A client-streaming or bidi handler (counted in the connection's
  // streaming_handlers_ while it runs). Set before the stream is shared.
  bool streaming_handler_ = false;
  internal::CondVar cv_;
  // The handler's thread only: the last request read came with descriptors,
  // which the context may still hold.
  bool received_fds_ = false;
  // Likewise for shared buffers.
  bool received_buffers_ = false;
  // Made by the first child call; null for (almost) every call.
  mutable std::shared_ptr<ChildCalls> child_calls_;
  // Set by StartReactor (under connection_->mu_), then kept to the end.
  std::unique_ptr<Reactor> reactor_;
  std::atomic<bool> reactor_started_{false};
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SERVER_STREAM_H_
