// ipcrpc internal: the server machinery behind ipcrpc::Server.
//
// ServerCore owns the listeners, the connections, the handler thread pool
// and the method table. Each ServerConnection has one reader thread that
// decodes frames and feeds ServerStreams; handlers run on the pool and block
// on their stream's condition variable for requests and flow-control credit.
//
// Locking: ServerCore::mu_ guards the connection list and call counts;
// each ServerConnection::mu_ guards its streams. Order: core before
// connection; neither is held during a transport write.

#ifndef IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_
#define IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/internal/framed_connection.h"
#include "runtime/codegen/method_handler.h"
#include "runtime/internal/payload_queue.h"
#include "runtime/internal/thread_pool.h"
#include "runtime/server.h"
#include "runtime/server_context.h"
#include "transports/transport.h"

namespace ipcrpc::internal {

class ServerConnection;
class ServerCore;

class ServerStream final : public ServerCall {
 public:
  // `method` must outlive the stream (it is the registered method's name).
  ServerStream(std::shared_ptr<ServerConnection> connection, uint32_t id,
               absl::string_view method, absl::Time deadline, Metadata client_metadata);

  bool Read(google::protobuf::MessageLite* message) override;
  bool AtEndOfStream() override;
  bool Write(const google::protobuf::MessageLite& message) override;
  bool SendInitialMetadata() override;
  void Finish(const absl::Status& status,
              const google::protobuf::MessageLite* last_message) override;
  ServerContext& context() override { return context_; }

  bool cancelled() const;
  // A generic call (runtime/generic_service.h) has no registered name to
  // point at: the stream keeps its own copy of the wire name.
  void KeepMethodName(absl::string_view method);
  // After the handler returned: ends a call the handler did not finish
  // (INTERNAL). Costs nothing when it did.
  void FinishIfHandlerDidNot();

 private:
  friend class ServerConnection;
  // RESOURCE_EXHAUSTED if a response of `size` bytes may not be sent.
  absl::Status CheckSendSize(size_t size) const;
  // Appends HEADERS to *out if initial metadata has not gone out yet.
  void AppendHeadersLocked(std::string* out);

  const std::shared_ptr<ServerConnection> connection_;
  const uint32_t id_;
  std::string kept_method_;  // see KeepMethodName
  ServerContext context_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finish_called_{false};  // Finish() has been entered

  // Guarded by connection_->mu_.
  PayloadQueue inbox_;
  bool half_closed_ = false;
  bool headers_sent_ = false;
  bool finished_ = false;
  int64_t send_window_ = 0;
  uint32_t unacked_bytes_ = 0;
  absl::Status forced_status_;  // overrides the handler's status when set
  // Single-request methods start their handler once the request is complete
  // (half-close), so the handler thread is woken once, not once per frame.
  MethodHandler* deferred_handler_ = nullptr;
  internal::CondVar cv_;
};

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(ServerCore& core, std::unique_ptr<Transport> transport);
  ~ServerConnection();

  // Starts reading (the first thread exchanges HELLO).
  void Start();
  // Refuses new calls and tells the client (GOAWAY).
  void GoAway(absl::string_view reason);
  // Cancels every call in flight.
  void CancelAll();
  // Closes the transport; the reading threads end. Then Join().
  void Close();
  void Join();
  bool finished();  // closed, every thread gone, no stream left

 private:
  friend class ServerStream;
  // Thread bodies. The thread holding the reading role reads frames; a
  // single-request call whose request is complete runs on that thread, after
  // the role has been handed to a standby thread (woken, or spawned if none
  // is idle), so the connection is always being read.
  void ThreadMain(bool first);
  bool Handshake();
  // Waits until no thread reads and takes the role; false once closed.
  bool AcquireReadingRole();
  // Reads until a handler has run inline (true) or the connection ended.
  bool ReadUntilHandlerRanInline();
  void EndConnection();
  void SpawnThreadLocked(bool holds_reading_role) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 public:
  // Called by the server's watchdog: if the reading role was released by an
  // inline handler before `released_before` and nobody has taken it since,
  // wake (or spawn) a standby thread to read.
  void HandOffIfOrphaned(absl::Time released_before);

 private:
  // Applies a frame; a call whose handler may start now is returned in *ready.
  void HandleFrame(Frame& frame, std::shared_ptr<ServerStream>* ready,
                   MethodHandler** ready_handler);
  // Applies a frame to its stream; false if it changed nothing.
  bool HandleStreamFrameLocked(ServerStream& stream, Frame& frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartCall(uint32_t stream_id, absl::string_view payload);
  void RefuseCall(uint32_t stream_id, const absl::Status& status);
  void StreamFinished(ServerStream* stream);
  // Hands the stream's handler to the thread pool.
  void RunHandler(std::shared_ptr<ServerStream> stream, MethodHandler* handler);

  ServerCore& core_;
  FramedConnection framed_;
  wire::Hello peer_hello_;

  internal::Mutex mu_;
  absl::flat_hash_map<uint32_t, std::shared_ptr<ServerStream>> streams_ ABSL_GUARDED_BY(mu_);
  uint32_t last_stream_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool going_away_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;   // the transport has ended
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // a thread holds the reading role
  int idle_readers_ ABSL_GUARDED_BY(mu_) = 0;  // threads waiting for the role
  // The role was released by an inline handler and nobody was woken for it.
  bool role_orphaned_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time role_released_at_ ABSL_GUARDED_BY(mu_);
  int live_threads_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  internal::CondVar reader_cv_;
  // The frame being read by the thread holding the reading role (reused, so
  // its payload's memory is too).
  Frame read_frame_;
};

class ServerCore {
 public:
  // `generic_method`, if not null, serves every method no service serves
  // (see FindGenericMethod).
  ServerCore(const ServerOptions& options, std::vector<Service*> services,
             const Service::RegisteredMethod* generic_method = nullptr);
  ~ServerCore();

  // Checks the method table (duplicate service names); call once before use.
  absl::Status Init();
  void AddListener(std::unique_ptr<Listener> listener);
  absl::Status AddTransport(std::unique_ptr<Transport> transport);
  void Wait();
  void Shutdown(absl::Time deadline);
  std::vector<std::string> addresses() const;

  const ServerOptions& options() const { return options_; }
  // Looks a method up; UNIMPLEMENTED with a precise message if absent.
  absl::StatusOr<const Service::RegisteredMethod*> FindMethod(absl::string_view name) const;
  // Generic dispatch: the method serving names no service serves, or null.
  // A call it serves has its stream keep the wire name (ServerStream::KeepMethodName),
  // since its descriptor's name is empty.
  const Service::RegisteredMethod* FindGenericMethod() const { return generic_method_; }
  ThreadPool& pool() { return *pool_; }
  // Handlers run inline on reading threads, at most num_threads at once
  // across all connections; beyond that they go to the pool.
  bool TryAcquireInlineSlot();
  void ReleaseInlineSlot();
  // Call accounting, for draining at shutdown.
  void CallStarted();
  void CallEnded();
  void ConnectionEnded();

 private:
  void AcceptLoop(Listener* listener);
  void ReapFinishedConnectionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IdleWithoutListenersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ServerOptions options_;
  const std::vector<Service*> services_;
  const Service::RegisteredMethod* const generic_method_;  // may be null
  absl::flat_hash_map<std::string, const Service::RegisteredMethod*> methods_;
  absl::flat_hash_set<std::string> service_names_;
  std::unique_ptr<ThreadPool> pool_;
  std::atomic<int> inline_handlers_{0};

  // The watchdog hands a connection's reading role to a standby thread when
  // an inline handler has held the connection unread for kHandOffGrace. It
  // ticks only while handlers run inline (and kWatchdogIdle after), and
  // otherwise sleeps until one starts.
  void WatchdogLoop();
  static constexpr absl::Duration kHandOffGrace = absl::Milliseconds(1);
  static constexpr absl::Duration kWatchdogIdle = absl::Milliseconds(100);
  std::thread watchdog_;
  internal::Mutex watchdog_mu_;
  internal::CondVar watchdog_cv_;
  bool watchdog_stop_ ABSL_GUARDED_BY(watchdog_mu_) = false;
  std::atomic<bool> watchdog_sleeping_{false};

  std::vector<std::unique_ptr<Listener>> listeners_;  // fixed after start
  std::vector<std::thread> accept_threads_;

  mutable internal::Mutex mu_;
  std::vector<std::shared_ptr<ServerConnection>> connections_ ABSL_GUARDED_BY(mu_);
  // Not guarded, so starting and ending a call takes no lock; CallEnded locks
  // mu_ when the count reaches zero, so Await()s on it re-check.
  std::atomic<int> active_calls_{0};
  int live_connections_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SERVER_CORE_H_
