#include "runtime/internal/server_connection.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "runtime/internal/buffer_fields.h"
#include "runtime/internal/call_limits.h"
#include "runtime/internal/server_core.h"
#include "wire/compression.h"
#include "wire/refusal.h"

namespace ipcrpc::internal {

ServerConnection::ServerConnection(ServerCore& core, std::unique_ptr<Transport> transport)
    : core_(core),
      peer_uid_(transport->peer().uid),
      framed_(std::move(transport), core.options().max_message_size,
              ControlFrameLimit(MetadataLimitsOf(core.options()))),
      reading_role_([this](bool first) { ThreadMain(first); }) {}

ServerConnection::~ServerConnection() {
  Join();
  if (shared_buffers_ != nullptr) shared_buffers_->Close();
}

absl::Status ServerConnection::Start() {
  absl::Status started = reading_role_.Start();
  if (!started.ok()) {
    reading_role_.Close();  // no thread: finished() at once
    return absl::ResourceExhaustedError(absl::StrCat(
        "server cannot start a thread for a new connection: ", started.message()));
  }
  return started;
}

void ServerConnection::Refuse(const absl::Status& status) {
  std::string out;
  AppendRefusalFrame(status, &out);
  // Straight out, before any negotiation (PROTOCOL.md §4): this runs on the
  // accept thread, which a client that never writes must not hold up.
  absl::string_view chunks[] = {out};
  framed_.transport().WriteFirst(chunks, absl::Now() + kControlWriteTimeout).IgnoreError();
  framed_.transport().Shutdown();
}

void ServerConnection::ThreadMain(bool first) {
  if (first) {
    if (!Handshake()) return;
    EnableParkingIfPossible();
  } else if (!reading_role_.Acquire()) {
    return;
  }
  ReadWhileHoldingRole(/*readable=*/false);
}

void ServerConnection::EnableParkingIfPossible() {
  EventLoop* loop = core_.event_loop();
  const int fd = framed_.transport().readiness_fd();
  if (loop == nullptr || fd < 0) return;  // a thread keeps reading, as before
  absl::StatusOr<EventLoop::Registration> watched = loop->Watch(fd, shared_from_this());
  if (!watched.ok()) return;  // epoll refused the fd: a thread reads it
  registration_ = *watched;   // immutable from here on
  parking_.store(true, std::memory_order_relaxed);
  const EventLoop::Registration registration = *watched;
  // Handed off by the watchdog: the reader may hold whole frames already (a
  // client that sent several calls at once), which no readiness would
  // announce, so a turn at once.
  reading_role_.EnableParking([loop, registration] { loop->Post(registration); });
}

void ServerConnection::OnReadable() {
  // Not parked: ended, or someone reads it (who then reads again before
  // parking).
  if (!reading_role_.BeginTurn()) return;
  framed_.transport().NoteReadable();
  ReadWhileHoldingRole(/*readable=*/true);
  reading_role_.EndTurn();
}

void ServerConnection::ReadWhileHoldingRole(bool readable) {
  while (ReadUntilHandlerRanInline(readable) == ReadEnd::kHandlerRanInline) {
    readable = false;
    // A thread of the event loop never waits as a standby: if the role was
    // handed off meanwhile, the loop reads the connection.
    const bool holds = parking_.load(std::memory_order_relaxed) ? reading_role_.TryAcquire()
                                                                 : reading_role_.Acquire();
    if (!holds) return;
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
  if (core_.options().accept_compression) ours.set_accept_compression(kSupportedCompression);
  ours.set_shared_buffers(core_.options().shared_buffers);
  ours.set_max_fds_per_message(core_.options().max_fds_per_message);
  absl::StatusOr<wire::Hello> theirs =
      framed_.ExchangeHello(ours, absl::Now() + core_.options().handshake_timeout);
  if (!theirs.ok()) {
    EndConnection();
    return false;
  }
  peer_hello_ = std::move(*theirs);
  if (framed_.announced_shared_buffers() && peer_hello_.shared_buffers()) {
    std::weak_ptr<ServerConnection> weak = weak_from_this();
    shared_buffers_ = std::make_shared<SharedBufferSession>(
        framed_.transport().description(),
        SharedBufferLimits{core_.options().shared_buffer_pool_bytes,
                           core_.options().shared_buffer_arena_bytes},
        [weak](absl::string_view frames, absl::Span<const int> fds) -> absl::Status {
          std::shared_ptr<ServerConnection> connection = weak.lock();
          if (connection == nullptr) return absl::UnavailableError("connection closed");
          return connection->framed_.WriteWithFds(frames, fds, absl::Now() + kControlWriteTimeout);
        });
  }
  hello_done_.store(true, std::memory_order_release);
  return true;
}

ServerConnection::ReadEnd ServerConnection::ReadUntilHandlerRanInline(bool readable) {
  ReadingRole::Watchdog& watchdog = core_.watchdog();
  const bool parking = parking_.load(std::memory_order_relaxed);
  // Just reported readable: read before parking again.
  bool may_park = parking && !readable;
  // Waits in the event loop, not on a thread (nor with a read buffer); false
  // if bytes came meanwhile (the loop is edge-triggered: read them first).
  auto park = [this] {
    framed_.reader().ReleaseBufferIfEmpty();
    if (reading_role_.Park()) return true;
    framed_.transport().NoteReadable();  // reported readable: no poll before the read
    return false;
  };
  for (;;) {
    // No streaming handler waits while the reader waits for bytes.
    if (!deferred_streams_.empty() && !framed_.reader().NextFrameBuffered()) {
      DispatchDeferredStreams();
    }
    // Nothing of a next frame here, and the last read took all there was:
    // no read needed to know it (the call's path: no system call to park).
    if (may_park && framed_.reader().Idle() && framed_.transport().ReadDrained() && park()) {
      return ReadEnd::kParked;
    }
    may_park = parking;
    // In event-loop mode no read waits: a frame that has not fully arrived
    // stays in the reader, and the loop calls back when more comes (a peer
    // that sends half a frame holds no thread).
    absl::Status read = framed_.reader().ReadFrame(
        &read_frame_, parking ? absl::InfinitePast() : absl::InfiniteFuture());
    if (parking && absl::IsDeadlineExceeded(read)) {
      if (park()) return ReadEnd::kParked;
      may_park = false;  // bytes came since the read: read again
      continue;
    }
    if (!read.ok()) {
      // A violation ends the connection, so the reader's count is final.
      if (uint64_t fds = framed_.reader().undeclared_fds_closed(); fds > 0) {
        core_.Count(ServerCore::Counter::kUndeclaredFdsClosed, fds);
      }
      EndConnection();
      return ReadEnd::kEnded;
    }
    std::shared_ptr<ServerStream> ready;
    MethodHandler* handler = nullptr;  // null: `ready` has reactions due
    HandleFrame(read_frame_, &ready, &handler);
    // Releases of buffers dropped while handling the frame (a failed message).
    if (shared_buffers_ != nullptr) shared_buffers_->FlushReleases();
    if (ready == nullptr) continue;
    const bool streaming = ready->streaming_handler_;
    if (!watchdog.TryStartInlineHandler()) {
      if (handler == nullptr) {
        ready->ScheduleReactions();
      } else {
        RunHandler(std::move(ready), handler, streaming);
      }
      continue;
    }
    // Run the handler on this thread, which has the request in hand: no
    // thread is woken on the call's path. The reading role is released
    // without waking anyone: a quick handler is done, and this thread reads
    // again, before anyone needed it; if the handler runs longer than the
    // watchdog's grace, the watchdog hands the role to a standby thread
    // (reading_role.h), so the connection never stays unread for long.
    reading_role_.ReleaseForInlineHandler(absl::Now());
    if (handler == nullptr) {
      ready->RunReactions();  // a callback call's reactions: inline, like a handler
    } else {
      handler->Run(*ready);
      if (streaming) streaming_handlers_.fetch_sub(1, std::memory_order_relaxed);
      ready->FinishIfHandlerDidNot();
    }
    watchdog.InlineHandlerDone();
    return ReadEnd::kHandlerRanInline;
  }
}

void ServerConnection::EndConnection() {
  framed_.transport().Shutdown();
  // Every segment of the connection is forgotten on this side (writers and
  // views still alive keep their own mappings).
  if (shared_buffers_ != nullptr) shared_buffers_->Close();
  {
    internal::MutexLock lock(&mu_);
    going_away_ = true;
  }
  reading_role_.Close();
  // The loop lets go of the connection (this reader holds the role, so no
  // park is under way).
  if (registration_.has_value()) core_.event_loop()->Forget(*registration_);
  CancelAll();  // the client is gone: every call of this connection ends
  core_.ConnectionEnded(peer_uid_);
}

void ServerConnection::RefuseCall(uint32_t stream_id, const absl::Status& status) {
  if (absl::IsResourceExhausted(status)) core_.Count(ServerCore::Counter::kCallsResourceExhausted);
  std::string out;
  AppendTrailers(stream_id, status, {}, MetadataLimitsOf(core_.options()), &out);
  framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
}

void ServerConnection::StartCall(uint32_t stream_id, const Frame& frame,
                                 std::shared_ptr<ServerStream>* ready,
                                 MethodHandler** ready_handler) {
  // Only the reading thread starts calls; reusing the message keeps its
  // strings' memory, so parsing the next CALL_START allocates nothing.
  thread_local wire::CallStart start;
  ParsedCallStart call;
  absl::Status parsed =
      ParseCallStart(frame, MetadataLimitsOf(core_.options()), absl::Now(), &start, &call);
  absl::StatusOr<const Service::RegisteredMethod*> method =
      parsed.ok() ? core_.FindMethod(call.method) : parsed;
  absl::Status refusal = method.status();
  Metadata metadata = std::move(call.metadata);
  const absl::Time deadline = call.deadline;
  std::shared_ptr<ServerStream> stream;
  MethodHandler* handler = nullptr;
  bool single_request = false;
  bool threadless = false;
  bool deferred_streaming = false;
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
      single_request =
          m.descriptor.kind == RpcKind::kUnary || m.descriptor.kind == RpcKind::kServerStreaming;
      // A streaming callback method holds no thread: it starts now.
      threadless = !single_request && m.handler->callback();
      // A streaming handler holds a pool thread for its whole call: one
      // connection may hold only its share of the pool.
      if (!single_request && !threadless) {
        const uint32_t cap = core_.max_streaming_handlers_per_connection();
        if (streaming_handlers_.load(std::memory_order_relaxed) >= cap) {
          refusal = absl::ResourceExhaustedError(absl::StrCat(
              "too many streaming calls on one connection hold server threads (limit ", cap,
              ", max_streaming_handlers_per_connection)"));
        } else {
          streaming_handlers_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      // Counted here, last: a call refused above never counted.
      if (refusal.ok() && !core_.TryCallStarted()) {
        if (!single_request && !threadless) {
          streaming_handlers_.fetch_sub(1, std::memory_order_relaxed);
        }
        refusal = absl::ResourceExhaustedError(
            absl::StrCat("server has too many calls in progress (max_concurrent_calls ",
                         core_.options().max_concurrent_calls, ")"));
      }
    }
    if (refusal.ok()) {
      const Service::RegisteredMethod& m = **method;
      handler = m.handler.get();
      stream = std::make_shared<ServerStream>(shared_from_this(), stream_id, m.descriptor.name,
                                              deadline, std::move(metadata));
      if (m.descriptor.name.empty()) stream->KeepMethodName(call.method);  // generic
      streams_[stream_id] = stream;
      if (single_request) {
        stream->deferred_handler_ = handler;
      } else if (!threadless) {
        stream->streaming_handler_ = true;
        // More frames came with CALL_START (a client that sent its requests
        // and half-close in the same write): if the half-close is among
        // them, the handler has all it needs and runs like a unary one.
        if (framed_.reader().NextFrameBuffered()) {
          stream->deferred_handler_ = handler;
          deferred_streaming = true;
        }
      }
    }
  }
  if (!refusal.ok()) return RefuseCall(stream_id, refusal);
  if (threadless) {
    *ready = std::move(stream);  // the method makes its reactor, inline or on the pool
    *ready_handler = handler;
  } else if (deferred_streaming) {
    deferred_streams_.push_back(stream);
  } else if (!single_request) {
    RunHandler(std::move(stream), handler, /*streaming=*/true);
  }
}

void ServerConnection::DispatchDeferredStreams() {
  std::vector<std::pair<std::shared_ptr<ServerStream>, MethodHandler*>> start;
  {
    internal::MutexLock lock(&mu_);
    for (const std::weak_ptr<ServerStream>& weak : deferred_streams_) {
      std::shared_ptr<ServerStream> stream = weak.lock();
      // Null handler: it became ready (its half-close came) and ran already.
      if (stream != nullptr && stream->deferred_handler_ != nullptr) {
        MethodHandler* handler = std::exchange(stream->deferred_handler_, nullptr);
        start.emplace_back(std::move(stream), handler);
      }
    }
  }
  deferred_streams_.clear();
  for (auto& [stream, handler] : start) RunHandler(std::move(stream), handler, /*streaming=*/true);
}

void ServerConnection::RunHandler(std::shared_ptr<ServerStream> stream,
                                  MethodHandler* handler, bool streaming) {
  std::shared_ptr<ServerStream> keep = stream;
  bool scheduled = core_.pool().Schedule([this, stream = std::move(stream), handler, streaming] {
    handler->Run(*stream);
    // Before the call finishes: once it has, the stream (and with it this
    // connection) may be released.
    if (streaming) streaming_handlers_.fetch_sub(1, std::memory_order_relaxed);
    stream->FinishIfHandlerDidNot();
  });
  if (!scheduled) {
    if (streaming) streaming_handlers_.fetch_sub(1, std::memory_order_relaxed);
    core_.Count(ServerCore::Counter::kCallsResourceExhausted);
    keep->Finish(absl::ResourceExhaustedError("server overloaded: too many calls queued"),
                 nullptr);
  }
}

void ServerConnection::HandleFrame(Frame& frame, std::shared_ptr<ServerStream>* ready,
                                   MethodHandler** ready_handler) {
  const FrameHeader& h = frame.header;
  // Descriptors that no stream takes (an unknown or failed stream, a dropped
  // message) are closed on return, not kept until the next frame.
  absl::Cleanup close_untaken_fds = [&frame] { frame.fds.clear(); };
  switch (h.type) {
    case FrameType::kCallStart:
      StartCall(h.stream_id, frame, ready, ready_handler);  // refused in TRAILERS if oversized
      return;
    case FrameType::kPing:
      if (h.stream_id != 0 || frame.payload.size() != 8 || frame.oversized) {
        framed_.transport().Shutdown();  // protocol violation (PROTOCOL.md §9)
      } else if (h.flags & kFlagPingAck) {
        ping_acked_.store(true, std::memory_order_relaxed);
      } else {
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
    case FrameType::kSegment:
    case FrameType::kSegmentRetire:
    case FrameType::kBufferRelease:
      if (!HandleSharedBufferFrame(frame)) framed_.transport().Shutdown();
      return;
    default:
      break;
  }
  // A MESSAGE's shared buffers are resolved whatever becomes of it, so that a
  // dropped message still releases them (PROTOCOL.md §13).
  std::vector<ReceivedBuffer> buffers;
  absl::Status buffers_status;
  const size_t wire_size = frame.payload.size();
  if (h.type == FrameType::kMessage && (h.flags & kFlagSharedBuffers) && !frame.oversized) {
    buffers_status =
        TakeBufferTable(&frame.payload, frame.fds.size(), shared_buffers_.get(), &buffers);
  }
  std::shared_ptr<ChildCalls> cancelled_children;  // set by a CANCEL only
  {
    internal::MutexLock lock(&mu_);
    auto it = streams_.find(h.stream_id);
    if (it == streams_.end()) return;  // finished already, or never existed
    if (!HandleStreamFrameLocked(*it->second, frame, &cancelled_children, buffers,
                                 buffers_status, wire_size)) {
      return;
    }
    ServerStream& s = *it->second;
    if (s.reactor_ != nullptr) {
      // A callback call: its reactions due now run on this thread, like an
      // inline handler (or on the pool).
      if (s.ClaimReactionsLocked()) *ready = it->second;
      *ready_handler = nullptr;
    } else {
      s.cv_.SignalAll();
    }
    bool request_complete = s.half_closed_ || !s.forced_status_.ok() ||
                            s.cancelled_.load(std::memory_order_relaxed);
    if (s.deferred_handler_ != nullptr && request_complete) {
      *ready = it->second;
      *ready_handler = std::exchange(s.deferred_handler_, nullptr);
    }
  }
  if (cancelled_children != nullptr) cancelled_children->CancelAll();
}

void ServerConnection::CancelAll() {
  std::vector<std::pair<std::shared_ptr<ServerStream>, MethodHandler*>> deferred;
  std::vector<std::shared_ptr<ChildCalls>> children;
  std::vector<std::shared_ptr<ServerStream>> reacting;  // callback calls told OnCancel
  {
    internal::MutexLock lock(&mu_);
    for (auto& entry : streams_) {
      ServerStream& s = *entry.second;
      if (std::shared_ptr<ChildCalls> c = s.CancelLocked()) children.push_back(std::move(c));
      s.cv_.SignalAll();
      if (s.ClaimReactionsLocked()) reacting.push_back(entry.second);
      // A handler still waiting for its request runs now, sees the
      // cancellation and finishes, so that every call ends.
      if (s.deferred_handler_ != nullptr) {
        deferred.emplace_back(entry.second, std::exchange(s.deferred_handler_, nullptr));
      }
    }
  }
  for (auto& c : children) c->CancelAll();
  for (auto& stream : reacting) stream->ScheduleReactions();
  for (auto& [stream, handler] : deferred) {
    const bool streaming = stream->streaming_handler_;
    RunHandler(std::move(stream), handler, streaming);
  }
}

bool ServerConnection::HandleSharedBufferFrame(Frame& frame) {
  const FrameHeader& h = frame.header;
  std::vector<ScopedFd> fds = std::move(frame.fds);
  frame.fds.clear();
  if (shared_buffers_ == nullptr) return true;  // not negotiated: skipped like unknown types
  if (h.stream_id != 0 || frame.oversized) return false;
  absl::Status status;
  if (h.type == FrameType::kSegment) {
    status = shared_buffers_->OnSegment(frame.payload, std::move(fds));
  } else if (h.type == FrameType::kSegmentRetire) {
    status = shared_buffers_->OnRetire(frame.payload);
  } else {
    status = shared_buffers_->OnRelease(frame.payload);
  }
  return status.ok();
}

bool ServerConnection::HandleStreamFrameLocked(ServerStream& s, Frame& frame,
                                               std::shared_ptr<ChildCalls>* cancelled_children,
                                               std::vector<ReceivedBuffer>& buffers,
                                               const absl::Status& buffers_status,
                                               size_t wire_size) {
  const FrameHeader& h = frame.header;
  switch (h.type) {
    case FrameType::kMessage:
      if (!s.forced_status_.ok()) {
        return false;  // the call has failed already: dropped unbuffered
      } else if (frame.oversized) {
        core_.Count(ServerCore::Counter::kCallsResourceExhausted);
        s.forced_status_ = absl::ResourceExhaustedError(absl::StrCat(
            "request message of ", h.length, " bytes exceeds the server's max_message_size of ",
            core_.options().max_message_size, " bytes"));
      } else if (s.half_closed_) {
        s.forced_status_ = absl::InternalError("MESSAGE after HALF_CLOSE");
      } else if (s.receive_window_ <= 0) {
        // PROTOCOL.md §7: the client sent beyond its flow-control window.
        core_.Count(ServerCore::Counter::kCallsResourceExhausted);
        s.forced_status_ = absl::ResourceExhaustedError(absl::StrCat(
            "client sent a message while its flow-control window was used up (",
            s.receive_window_, " bytes left of the server's stream window of ",
            core_.options().stream_window_bytes, ")"));
      } else if (const uint8_t compression = CompressionOf(h.flags);
                 compression != kCompressionNone &&
                 !PeerAccepts(core_.options().accept_compression ? kSupportedCompression : 0,
                              compression)) {
        // PROTOCOL.md §2: an algorithm this server did not offer (gRPC's code).
        s.forced_status_ = absl::UnimplementedError(absl::StrCat(
            "request message compressed with algorithm id ", compression,
            ", which this server does not accept"));
      } else if (compression != kCompressionNone && h.fd_count > 0) {
        // A message with descriptors is never compressed (PROTOCOL.md §10).
        s.forced_status_ = absl::InternalError("compressed request with file descriptors");
      } else if (compression != kCompressionNone && (h.flags & kFlagSharedBuffers)) {
        s.forced_status_ = absl::InternalError("compressed request with shared buffers");
      } else if (!buffers_status.ok()) {
        // PROTOCOL.md §13: a reference that does not resolve fails the call.
        s.forced_status_ = absl::Status(
            buffers_status.code(),
            absl::StrCat("a request's shared buffers: ", buffers_status.message()));
      } else if (frame.fds_lost) {
        // This process is out of descriptors: the request is lost, the
        // connection is not (PROTOCOL.md §10).
        s.forced_status_ = absl::ResourceExhaustedError(absl::StrCat(
            "a request came with ", h.fd_count,
            " file descriptors that the server could not receive: it is out of descriptors "
            "(EMFILE, RLIMIT_NOFILE)"));
      } else if (!frame.fds.empty() &&
                 !queued_fds_.TryAdd(frame.fds.size(), kMaxQueuedFdsPerConnection)) {
        core_.Count(ServerCore::Counter::kCallsResourceExhausted);
        s.forced_status_ = absl::ResourceExhaustedError(absl::StrCat(
            "the connection's unread requests already hold ", queued_fds_.count(),
            " file descriptors; at most ", kMaxQueuedFdsPerConnection, " are kept"));
      } else {
        // The window counts the bytes on the wire, the buffer table included.
        s.receive_window_ -= static_cast<int64_t>(wire_size);
        const auto table_bytes = static_cast<uint32_t>(wire_size - frame.payload.size());
        s.inbox_.push_back(std::move(frame.payload), compression, std::move(frame.fds),
                          &queued_fds_, std::move(buffers), table_bytes);
      }
      break;
    case FrameType::kHalfClose:
      s.half_closed_ = true;
      break;
    case FrameType::kCancel:
      *cancelled_children = s.CancelLocked();
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

void ServerConnection::GoAway(absl::string_view reason, absl::Time deadline) {
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
  // A handler blocked writing to a client that stopped reading holds the
  // write turn: do not wait for it beyond the shutdown deadline.
  framed_.WriteWithin(out, std::min(deadline, absl::Now() + kControlWriteTimeout)).IgnoreError();
}

void ServerConnection::Close() { framed_.transport().Shutdown(); }

void ServerConnection::CheckIdle(absl::Time now) {
  if (!hello_done_.load(std::memory_order_acquire)) return;  // handshake_timeout applies
  bool idle;
  {
    internal::MutexLock lock(&mu_);
    if (going_away_) return;
    // Idle: no call open now, and none started since the last check.
    idle = streams_.empty() && last_stream_id_ == idle_check_stream_id_;
    idle_check_stream_id_ = last_stream_id_;
  }
  const ServerOptions& options = core_.options();
  if (!idle || idle_since_ == absl::InfinitePast()) {
    idle_since_ = now;
    ping_sent_at_ = absl::InfinitePast();
    pinged_ok_at_ = absl::InfinitePast();
    return;
  }
  // Short waits for the write turn: one stuck connection must not hold up
  // the others' checks (what is not sent is made good by the close).
  const absl::Time write_deadline = now + absl::Milliseconds(100);
  if (options.idle_timeout > absl::ZeroDuration() && now - idle_since_ >= options.idle_timeout) {
    GoAway(absl::StrCat("connection idle for ", absl::FormatDuration(options.idle_timeout)),
           write_deadline);
    core_.Count(ServerCore::Counter::kConnectionsClosedIdle);
    Close();
    return;
  }
  if (options.keepalive_time <= absl::ZeroDuration()) return;
  if (ping_sent_at_ != absl::InfinitePast()) {
    if (ping_acked_.exchange(false, std::memory_order_relaxed)) {
      pinged_ok_at_ = now;
      ping_sent_at_ = absl::InfinitePast();
    } else if (now - ping_sent_at_ >= options.keepalive_timeout) {
      GoAway(absl::StrCat("keep-alive PING not answered within ",
                          absl::FormatDuration(options.keepalive_timeout)),
             write_deadline);
      core_.Count(ServerCore::Counter::kConnectionsClosedKeepalive);
      Close();
    }
    return;
  }
  if (now - std::max(idle_since_, pinged_ok_at_) < options.keepalive_time) return;
  ping_acked_.store(false, std::memory_order_relaxed);
  std::string out;
  AppendFrame(FrameType::kPing, 0, std::string(8, '\0'), &out);
  framed_.WriteWithin(out, write_deadline).IgnoreError();
  ping_sent_at_ = now;
}

void ServerConnection::Join() { reading_role_.Join(); }

bool ServerConnection::finished() {
  if (!reading_role_.finished()) return false;
  internal::MutexLock lock(&mu_);
  return streams_.empty();
}

}  // namespace ipcrpc::internal
