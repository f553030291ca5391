#include "runtime/internal/server_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

namespace ipcrpc {

bool ServerContext::IsCancelled() const { return stream_ != nullptr && stream_->cancelled(); }

namespace internal {
namespace {

void AppendTrailers(uint32_t stream_id, const absl::Status& status, const Metadata& metadata,
                    std::string* out) {
  if (status.ok() && metadata.empty()) {
    // The encoding of Trailers{code: 0} with no metadata is empty (proto3
    // omits zero fields): skip building the message.
    AppendFrame(FrameType::kTrailers, stream_id, {}, out);
    return;
  }
  wire::Trailers trailers;
  trailers.set_code(static_cast<int32_t>(status.code()));
  trailers.set_message(std::string(status.message()));
  MetadataToWire(metadata, trailers.mutable_metadata());
  AppendProtoFrame(FrameType::kTrailers, stream_id, trailers, trailers.ByteSizeLong(), out);
}

constexpr absl::Duration kControlWriteTimeout = absl::Seconds(5);

}  // namespace

// ---------------------------------------------------------------------------
// ServerStream

ServerStream::ServerStream(std::shared_ptr<ServerConnection> connection, uint32_t id,
                           absl::string_view method, absl::Time deadline,
                           Metadata client_metadata)
    : connection_(std::move(connection)), id_(id) {
  context_.method_ = method;
  context_.deadline_ = deadline;
  context_.client_metadata_ = std::move(client_metadata);
  context_.peer_ = connection_->framed_.transport().peer();
  context_.stream_ = this;
  send_window_ = connection_->peer_hello_.initial_stream_window();
}

void ServerStream::KeepMethodName(absl::string_view method) {
  kept_method_ = std::string(method);
  context_.method_ = kept_method_;
}

bool ServerStream::cancelled() const {
  if (cancelled_.load(std::memory_order_acquire)) return true;
  return context_.deadline_ != absl::InfiniteFuture() && absl::Now() >= context_.deadline_;
}

bool ServerStream::Read(google::protobuf::MessageLite* message) {
  ServerConnection& c = *connection_;
  std::string payload;
  uint32_t credit = 0;
  {
    internal::MutexLock lock(&c.mu_);
    while (inbox_.empty() && !half_closed_ && forced_status_.ok() && !cancelled()) {
      cv_.WaitWithDeadline(&c.mu_, context_.deadline_);
    }
    if (inbox_.empty() || !forced_status_.ok() || cancelled()) return false;
    payload = std::move(inbox_.front());
    inbox_.pop_front();
    unacked_bytes_ += static_cast<uint32_t>(payload.size());
    if (!half_closed_ && unacked_bytes_ >= c.core_.options().stream_window_bytes / 2) {
      credit = unacked_bytes_;
      unacked_bytes_ = 0;
    }
  }
  if (credit > 0) {
    std::string out;
    AppendCreditFrame(id_, credit, &out);
    c.framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
  }
  bool parsed = message->ParseFromString(payload);
  c.framed_.reader().Recycle(std::move(payload));
  if (!parsed) {
    internal::MutexLock lock(&c.mu_);
    forced_status_ = absl::InternalError(absl::StrCat(
        "could not parse a request message as ",
        message->GetTypeName()));
    return false;
  }
  return true;
}

void ServerStream::AppendHeadersLocked(std::string* out) {
  if (headers_sent_) return;
  headers_sent_ = true;
  if (context_.initial_metadata_.empty()) return;
  wire::Headers headers;
  MetadataToWire(context_.initial_metadata_, headers.mutable_metadata());
  AppendProtoFrame(FrameType::kHeaders, id_, headers, headers.ByteSizeLong(), out);
}

bool ServerStream::SendInitialMetadata() {
  ServerConnection& c = *connection_;
  std::string out;
  {
    internal::MutexLock lock(&c.mu_);
    if (headers_sent_ || finished_ || cancelled()) return !cancelled();
    headers_sent_ = true;
    wire::Headers headers;
    MetadataToWire(context_.initial_metadata_, headers.mutable_metadata());
    AppendProtoFrame(FrameType::kHeaders, id_, headers, headers.ByteSizeLong(), &out);
  }
  return c.framed_.Write(out, context_.deadline_).ok();
}

absl::Status ServerStream::CheckSendSize(size_t size) const {
  const ServerConnection& c = *connection_;
  size_t limit =
      std::min<size_t>(c.core_.options().max_message_size, c.peer_hello_.max_message_size());
  if (size <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "response message of ", size, " bytes exceeds the limit of ", limit, " bytes (",
      limit == c.core_.options().max_message_size ? "the server's max_message_size"
                                                  : "the client's max receive size",
      ")"));
}

bool ServerStream::AtEndOfStream() {
  ServerConnection& c = *connection_;
  internal::MutexLock lock(&c.mu_);
  while (inbox_.empty() && !half_closed_ && forced_status_.ok() && !cancelled()) {
    cv_.WaitWithDeadline(&c.mu_, context_.deadline_);
  }
  return inbox_.empty();
}

bool ServerStream::Write(const google::protobuf::MessageLite& message) {
  ServerConnection& c = *connection_;
  size_t size = message.ByteSizeLong();
  absl::Status size_ok = CheckSendSize(size);
  std::string& out = OutgoingFrameBuffer();
  {
    internal::MutexLock lock(&c.mu_);
    if (!size_ok.ok()) {
      forced_status_ = std::move(size_ok);
      return false;
    }
    while (send_window_ <= 0 && !cancelled() && forced_status_.ok()) {
      cv_.WaitWithDeadline(&c.mu_, context_.deadline_);
    }
    if (finished_ || cancelled() || !forced_status_.ok()) return false;
    send_window_ -= static_cast<int64_t>(size);
    AppendHeadersLocked(&out);
  }
  return c.framed_
      .WriteMessage(&out, id_, &message, size, FramedConnection::NoFramesAfter,
                    context_.deadline_)
      .ok();
}

void ServerStream::FinishIfHandlerDidNot() {
  if (finish_called_.load(std::memory_order_acquire)) return;
  Finish(absl::InternalError("handler returned without finishing the call"), nullptr);
}

void ServerStream::Finish(const absl::Status& status,
                          const google::protobuf::MessageLite* last_message) {
  finish_called_.store(true, std::memory_order_release);
  ServerConnection& c = *connection_;
  absl::Status final_status = status;
  std::string& out = OutgoingFrameBuffer();
  size_t size = 0;
  bool send;
  {
    internal::MutexLock lock(&c.mu_);
    if (finished_) return;
    finished_ = true;
    if (!forced_status_.ok()) final_status = forced_status_;
    // A cancelled client has forgotten the stream; nothing is sent.
    send = !cancelled_.load(std::memory_order_acquire);
    if (send && context_.deadline_ != absl::InfiniteFuture() && absl::Now() >= context_.deadline_) {
      final_status = absl::DeadlineExceededError("deadline exceeded on the server");
      last_message = nullptr;
    }
    if (send) {
      if (final_status.ok() && last_message != nullptr) {
        size = last_message->ByteSizeLong();
        if (absl::Status size_ok = CheckSendSize(size); !size_ok.ok()) {
          final_status = std::move(size_ok);
          last_message = nullptr;
        }
      }
      if (!final_status.ok()) last_message = nullptr;
      AppendHeadersLocked(&out);
    }
  }
  if (send) {
    // The last message is serialized after the lock is released (the handler
    // keeps it alive until Finish returns); a large one while it is written.
    c.framed_
        .WriteMessage(
            &out, id_, last_message, size,
            [&](std::string* after) {
              AppendTrailers(id_, final_status, context_.trailing_metadata_, after);
            },
            absl::Now() + kControlWriteTimeout)
        .IgnoreError();
  }
  c.StreamFinished(this);
}

// ---------------------------------------------------------------------------
// ServerConnection

ServerConnection::ServerConnection(ServerCore& core, std::unique_ptr<Transport> transport)
    : core_(core), framed_(std::move(transport), core.options().max_message_size) {}

ServerConnection::~ServerConnection() { Join(); }

void ServerConnection::Start() {
  internal::MutexLock lock(&mu_);
  reading_ = true;  // the first thread reads from the start
  SpawnThreadLocked(/*holds_reading_role=*/true);
}

void ServerConnection::SpawnThreadLocked(bool holds_reading_role) {
  ++live_threads_;
  threads_.emplace_back([this, holds_reading_role] {
    ThreadMain(holds_reading_role);
    internal::MutexLock lock(&mu_);
    --live_threads_;  // last touch of shared state: Join() may follow at once
  });
}

void ServerConnection::ThreadMain(bool first) {
  if (first ? !Handshake() : !AcquireReadingRole()) return;
  while (ReadUntilHandlerRanInline()) {
    if (!AcquireReadingRole()) return;
  }
}

bool ServerConnection::Handshake() {
  wire::Hello ours;
  ours.set_protocol_version(kProtocolVersion);
  ours.set_max_message_size(
      static_cast<uint32_t>(std::min<size_t>(core_.options().max_message_size, UINT32_MAX)));
  ours.set_initial_stream_window(core_.options().stream_window_bytes);
  ours.set_max_concurrent_streams(core_.options().max_concurrent_streams_per_connection);
  ours.set_agent(kAgent);
  absl::StatusOr<wire::Hello> theirs =
      framed_.ExchangeHello(ours, absl::Now() + absl::Seconds(10));
  if (!theirs.ok()) {
    EndConnection();
    return false;
  }
  peer_hello_ = std::move(*theirs);
  return true;
}

bool ServerConnection::AcquireReadingRole() {
  internal::MutexLock lock(&mu_);
  ++idle_readers_;
  while (reading_ && !closed_) reader_cv_.Wait(&mu_);
  --idle_readers_;
  if (closed_) return false;
  reading_ = true;
  role_orphaned_ = false;
  return true;
}

bool ServerConnection::ReadUntilHandlerRanInline() {
  for (;;) {
    if (!framed_.reader().ReadFrame(&read_frame_, absl::InfiniteFuture()).ok()) {
      EndConnection();
      return false;
    }
    std::shared_ptr<ServerStream> ready;
    MethodHandler* handler = nullptr;
    HandleFrame(read_frame_, &ready, &handler);
    if (ready == nullptr) continue;
    if (!core_.TryAcquireInlineSlot()) {
      RunHandler(std::move(ready), handler);
      continue;
    }
    // Run the handler on this thread, which has the request in hand: no
    // thread is woken on the call's path. The reading role is released
    // without waking anyone: a quick handler is done, and this thread reads
    // again, before anyone needed it; if the handler runs longer than the
    // watchdog's grace (ServerCore::WatchdogLoop), the watchdog hands the
    // role to a standby thread, so the connection never stays unread for long.
    {
      internal::MutexLock lock(&mu_);
      reading_ = false;
      role_orphaned_ = true;
      role_released_at_ = absl::Now();
    }
    handler->Run(*ready);
    ready->FinishIfHandlerDidNot();
    core_.ReleaseInlineSlot();
    return true;
  }
}

void ServerConnection::HandOffIfOrphaned(absl::Time released_before) {
  internal::MutexLock lock(&mu_);
  if (!role_orphaned_ || reading_ || closed_ || role_released_at_ > released_before) return;
  role_orphaned_ = false;
  if (idle_readers_ > 0) {
    reader_cv_.Signal();
  } else {
    SpawnThreadLocked(/*holds_reading_role=*/false);
  }
}

void ServerConnection::EndConnection() {
  framed_.transport().Shutdown();
  {
    internal::MutexLock lock(&mu_);
    going_away_ = true;
    closed_ = true;
    reader_cv_.SignalAll();
  }
  CancelAll();  // the client is gone: every call of this connection ends
  core_.ConnectionEnded();
}

void ServerConnection::RefuseCall(uint32_t stream_id, const absl::Status& status) {
  std::string out;
  AppendTrailers(stream_id, status, {}, &out);
  framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
}

void ServerConnection::StartCall(uint32_t stream_id, absl::string_view payload) {
  // Only the reading thread starts calls; reusing the message keeps its
  // strings' memory, so parsing the next CALL_START allocates nothing.
  thread_local wire::CallStart start;
  bool parsed = start.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  absl::StatusOr<const Service::RegisteredMethod*> method =
      parsed ? core_.FindMethod(start.method())
             : absl::InternalError("malformed CALL_START frame");
  Metadata metadata;
  absl::Status refusal = method.status();
  if (refusal.ok()) {
    if (absl::Status s = MetadataFromWire(start.metadata(), &metadata); !s.ok()) {
      refusal = absl::InternalError(s.message());
    }
  }
  const absl::Time deadline = start.timeout_micros() == 0
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + absl::Microseconds(start.timeout_micros());
  std::shared_ptr<ServerStream> stream;
  MethodHandler* handler = nullptr;
  bool single_request = false;
  {
    internal::MutexLock lock(&mu_);
    if (stream_id <= last_stream_id_) {
      framed_.transport().Shutdown();  // protocol violation: ids must increase
      return;
    }
    last_stream_id_ = stream_id;
    if (refusal.ok() && going_away_) {
      refusal = absl::UnavailableError("server is shutting down");
    } else if (refusal.ok() &&
               streams_.size() >= core_.options().max_concurrent_streams_per_connection) {
      refusal = absl::ResourceExhaustedError(
          absl::StrCat("too many concurrent calls on one connection (limit ",
                       core_.options().max_concurrent_streams_per_connection, ")"));
    }
    if (refusal.ok()) {
      const Service::RegisteredMethod& m = **method;
      handler = m.handler.get();
      single_request =
          m.descriptor.kind == RpcKind::kUnary || m.descriptor.kind == RpcKind::kServerStreaming;
      stream = std::make_shared<ServerStream>(shared_from_this(), stream_id, m.descriptor.name,
                                              deadline, std::move(metadata));
      if (m.descriptor.name.empty()) stream->KeepMethodName(start.method());  // generic
      streams_[stream_id] = stream;
      if (single_request) stream->deferred_handler_ = handler;
    }
  }
  if (!refusal.ok()) return RefuseCall(stream_id, refusal);
  core_.CallStarted();
  if (!single_request) RunHandler(std::move(stream), handler);
}

void ServerConnection::RunHandler(std::shared_ptr<ServerStream> stream,
                                  MethodHandler* handler) {
  std::shared_ptr<ServerStream> keep = stream;
  bool scheduled = core_.pool().Schedule([stream = std::move(stream), handler] {
    handler->Run(*stream);
    stream->FinishIfHandlerDidNot();
  });
  if (!scheduled) {
    keep->Finish(absl::ResourceExhaustedError("server overloaded: too many calls queued"),
                 nullptr);
  }
}

void ServerConnection::HandleFrame(Frame& frame, std::shared_ptr<ServerStream>* ready,
                                   MethodHandler** ready_handler) {
  const FrameHeader& h = frame.header;
  switch (h.type) {
    case FrameType::kCallStart:
      if (frame.oversized) {
        RefuseCall(h.stream_id, absl::ResourceExhaustedError("CALL_START frame too large"));
      } else {
        StartCall(h.stream_id, frame.payload);
      }
      return;
    case FrameType::kPing:
      if (!(h.flags & kFlagPingAck)) {
        std::string out;
        AppendFrame(FrameType::kPing, 0, frame.payload, &out, kFlagPingAck);
        framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
      }
      return;
    case FrameType::kHello:
    case FrameType::kTrailers:
    case FrameType::kHeaders:
      framed_.transport().Shutdown();  // protocol violation
      return;
    default:
      break;
  }
  internal::MutexLock lock(&mu_);
  auto it = streams_.find(h.stream_id);
  if (it == streams_.end()) return;  // finished already, or never existed
  if (!HandleStreamFrameLocked(*it->second, frame)) return;
  ServerStream& s = *it->second;
  s.cv_.SignalAll();
  bool request_complete = s.half_closed_ || !s.forced_status_.ok() ||
                          s.cancelled_.load(std::memory_order_relaxed);
  if (s.deferred_handler_ != nullptr && request_complete) {
    *ready = it->second;
    *ready_handler = std::exchange(s.deferred_handler_, nullptr);
  }
}

void ServerConnection::CancelAll() {
  std::vector<std::pair<std::shared_ptr<ServerStream>, MethodHandler*>> deferred;
  {
    internal::MutexLock lock(&mu_);
    for (auto& entry : streams_) {
      ServerStream& s = *entry.second;
      s.cancelled_.store(true, std::memory_order_release);
      s.cv_.SignalAll();
      // A handler still waiting for its request runs now, sees the
      // cancellation and finishes, so that every call ends.
      if (s.deferred_handler_ != nullptr) {
        deferred.emplace_back(entry.second, std::exchange(s.deferred_handler_, nullptr));
      }
    }
  }
  for (auto& [stream, handler] : deferred) RunHandler(std::move(stream), handler);
}

bool ServerConnection::HandleStreamFrameLocked(ServerStream& s, Frame& frame) {
  const FrameHeader& h = frame.header;
  switch (h.type) {
    case FrameType::kMessage:
      if (frame.oversized) {
        s.forced_status_ = absl::ResourceExhaustedError(absl::StrCat(
            "request message of ", h.length, " bytes exceeds the server's max_message_size of ",
            core_.options().max_message_size, " bytes"));
      } else {
        s.inbox_.push_back(std::move(frame.payload));
      }
      break;
    case FrameType::kHalfClose:
      s.half_closed_ = true;
      break;
    case FrameType::kCancel:
      s.cancelled_.store(true, std::memory_order_release);
      break;
    case FrameType::kCredit: {
      uint32_t credit;
      if (!ParseCreditPayload(frame.payload, &credit)) {
        framed_.transport().Shutdown();  // protocol violation
        return false;
      }
      s.send_window_ += credit;
      break;
    }
    default:
      return false;  // unknown frame types are skipped
  }
  return true;
}

void ServerConnection::StreamFinished(ServerStream* stream) {
  {
    internal::MutexLock lock(&mu_);
    streams_.erase(stream->id_);
  }
  core_.CallEnded();
}

void ServerConnection::GoAway(absl::string_view reason) {
  wire::GoAway goaway;
  {
    internal::MutexLock lock(&mu_);
    if (going_away_) return;
    going_away_ = true;
    goaway.set_last_stream_id(last_stream_id_);
  }
  goaway.set_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
  goaway.set_reason(std::string(reason));
  std::string out;
  AppendProtoFrame(FrameType::kGoAway, 0, goaway, goaway.ByteSizeLong(), &out);
  framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
}

void ServerConnection::Close() { framed_.transport().Shutdown(); }

void ServerConnection::Join() {
  for (;;) {
    std::vector<std::thread> threads;
    {
      internal::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    if (threads.empty()) return;
    for (std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();  // the last reference died on this very thread
      } else {
        t.join();
      }
    }
  }
}

bool ServerConnection::finished() {
  internal::MutexLock lock(&mu_);
  return closed_ && live_threads_ == 0 && streams_.empty();
}

// ---------------------------------------------------------------------------
// ServerCore

ServerCore::ServerCore(const ServerOptions& options, std::vector<Service*> services,
                       const Service::RegisteredMethod* generic_method)
    : options_(options), services_(std::move(services)), generic_method_(generic_method) {}

ServerCore::~ServerCore() { Shutdown(absl::Now()); }

absl::Status ServerCore::Init() {
  for (Service* service : services_) {
    if (!service_names_.insert(std::string(service->name())).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("service ", service->name(), " is registered twice"));
    }
    for (const Service::RegisteredMethod& m : service->methods()) {
      methods_[std::string(m.descriptor.name)] = &m;
    }
  }
  if (options_.num_threads < 1) {
    return absl::InvalidArgumentError("ServerOptions::num_threads must be at least 1");
  }
  pool_ = std::make_unique<ThreadPool>(options_.num_threads, options_.max_queued_calls);
  watchdog_ = std::thread([this] { WatchdogLoop(); });
  return absl::OkStatus();
}

absl::StatusOr<const Service::RegisteredMethod*> ServerCore::FindMethod(
    absl::string_view name) const {
  auto it = methods_.find(name);
  if (it != methods_.end()) return it->second;
  if (const Service::RegisteredMethod* generic = FindGenericMethod()) return generic;
  // "/pkg.Service/Method": say whether the service or only the method is unknown.
  size_t slash = name.rfind('/');
  if (name.size() < 3 || name[0] != '/' || slash == 0 || slash == absl::string_view::npos) {
    return absl::UnimplementedError(
        absl::StrCat("malformed method name \"", name, "\" (expected /package.Service/Method)"));
  }
  absl::string_view service = name.substr(1, slash - 1);
  if (!service_names_.contains(service)) {
    return absl::UnimplementedError(
        absl::StrCat("unknown service ", service, " (method ", name, ")"));
  }
  return absl::UnimplementedError(
      absl::StrCat("unknown method ", name.substr(slash + 1), " for service ", service));
}

void ServerCore::AddListener(std::unique_ptr<Listener> listener) {
  Listener* l = listener.get();
  listeners_.push_back(std::move(listener));
  accept_threads_.emplace_back([this, l] { AcceptLoop(l); });
}

std::vector<std::string> ServerCore::addresses() const {
  std::vector<std::string> out;
  for (const auto& l : listeners_) out.push_back(l->address());
  return out;
}

void ServerCore::AcceptLoop(Listener* listener) {
  for (;;) {
    absl::StatusOr<std::unique_ptr<Transport>> t = listener->Accept();
    if (absl::IsCancelled(t.status())) return;
    if (!t.ok()) {
      // E.g. EMFILE: back off instead of spinning; the listener stays usable.
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    if (!AddTransport(std::move(*t)).ok()) return;
  }
}

absl::Status ServerCore::AddTransport(std::unique_ptr<Transport> transport) {
  internal::MutexLock lock(&mu_);
  if (shutting_down_) return absl::FailedPreconditionError("server is shutting down");
  ReapFinishedConnectionsLocked();
  auto connection = std::make_shared<ServerConnection>(*this, std::move(transport));
  connections_.push_back(connection);
  ++live_connections_;
  connection->Start();
  return absl::OkStatus();
}

void ServerCore::ReapFinishedConnectionsLocked() {
  auto finished = [](const std::shared_ptr<ServerConnection>& c) { return c->finished(); };
  for (auto& c : connections_) {
    if (finished(c)) c->Join();
  }
  connections_.erase(std::remove_if(connections_.begin(), connections_.end(), finished),
                     connections_.end());
}

bool ServerCore::TryAcquireInlineSlot() {
  int in_use = inline_handlers_.load(std::memory_order_relaxed);
  while (in_use < options_.num_threads) {
    if (inline_handlers_.compare_exchange_weak(in_use, in_use + 1)) {
      // seq_cst on both sides (here and in WatchdogLoop): either the
      // watchdog sees this handler, or this sees the watchdog asleep.
      if (watchdog_sleeping_.load()) {
        internal::MutexLock lock(&watchdog_mu_);
        watchdog_cv_.Signal();
      }
      return true;
    }
  }
  return false;
}

void ServerCore::WatchdogLoop() {
  internal::MutexLock lock(&watchdog_mu_);
  absl::Time last_busy = absl::Now();
  while (!watchdog_stop_) {
    absl::Time now = absl::Now();
    if (inline_handlers_.load() > 0) last_busy = now;
    if (now - last_busy > kWatchdogIdle) {
      // Nothing runs inline: sleep until a handler starts (no periodic tick).
      watchdog_sleeping_.store(true);
      if (inline_handlers_.load() == 0) watchdog_cv_.Wait(&watchdog_mu_);
      watchdog_sleeping_.store(false);
      last_busy = absl::Now();
      continue;
    }
    watchdog_cv_.WaitWithTimeout(&watchdog_mu_, kHandOffGrace);
    std::vector<std::shared_ptr<ServerConnection>> connections;
    {
      internal::MutexLock core_lock(&mu_);
      connections = connections_;
    }
    watchdog_mu_.Unlock();
    absl::Time released_before = absl::Now() - kHandOffGrace;
    for (auto& c : connections) c->HandOffIfOrphaned(released_before);
    connections.clear();
    watchdog_mu_.Lock();
  }
}

void ServerCore::ReleaseInlineSlot() { inline_handlers_.fetch_sub(1); }

void ServerCore::CallStarted() { active_calls_.fetch_add(1); }

void ServerCore::CallEnded() {
  if (active_calls_.fetch_sub(1) == 1) {
    internal::MutexLock lock(&mu_);  // the unlock wakes Wait()/Shutdown() to re-check
  }
}

void ServerCore::ConnectionEnded() {
  internal::MutexLock lock(&mu_);
  --live_connections_;
}

bool ServerCore::IdleWithoutListenersLocked() const {
  return listeners_.empty() && live_connections_ == 0 && active_calls_ == 0;
}

void ServerCore::Wait() {
  internal::MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shut_down_ || IdleWithoutListenersLocked();
  });
}

void ServerCore::Shutdown(absl::Time deadline) {
  {
    internal::MutexLock lock(&mu_);
    if (shutting_down_) {
      mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shut_down_; });
      return;
    }
    shutting_down_ = true;
  }
  for (auto& l : listeners_) l->Close();
  for (auto& t : accept_threads_) t.join();
  accept_threads_.clear();
  std::vector<std::shared_ptr<ServerConnection>> connections;
  {
    internal::MutexLock lock(&mu_);
    connections = connections_;
  }
  for (auto& c : connections) c->GoAway("server is shutting down");
  auto no_calls = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_calls_ == 0; };
  {
    internal::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(no_calls, deadline);
  }
  for (auto& c : connections) c->CancelAll();
  {
    internal::MutexLock lock(&mu_);
    mu_.Await(no_calls);
  }
  for (auto& c : connections) c->Close();
  for (auto& c : connections) c->Join();
  {
    internal::MutexLock lock(&watchdog_mu_);
    watchdog_stop_ = true;
    watchdog_cv_.Signal();
  }
  if (watchdog_.joinable()) watchdog_.join();
  pool_.reset();
  internal::MutexLock lock(&mu_);
  connections_.clear();
  shut_down_ = true;
}

}  // namespace internal
}  // namespace ipcrpc
