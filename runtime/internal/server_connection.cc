#include "runtime/internal/server_connection.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "runtime/internal/call_limits.h"
#include "runtime/internal/server_core.h"

namespace ipcrpc::internal {

ServerConnection::ServerConnection(ServerCore& core, std::unique_ptr<Transport> transport)
    : core_(core),
      framed_(std::move(transport), core.options().max_message_size,
              ControlFrameLimit(MetadataLimitsOf(core.options()))),
      reading_role_([this](bool first) { ThreadMain(first); }) {}

ServerConnection::~ServerConnection() { Join(); }

void ServerConnection::Start() { reading_role_.Start(); }

void ServerConnection::ThreadMain(bool first) {
  if (first ? !Handshake() : !reading_role_.Acquire()) return;
  while (ReadUntilHandlerRanInline()) {
    if (!reading_role_.Acquire()) return;
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

bool ServerConnection::ReadUntilHandlerRanInline() {
  ReadingRole::Watchdog& watchdog = core_.watchdog();
  for (;;) {
    if (!framed_.reader().ReadFrame(&read_frame_, absl::InfiniteFuture()).ok()) {
      EndConnection();
      return false;
    }
    std::shared_ptr<ServerStream> ready;
    MethodHandler* handler = nullptr;
    HandleFrame(read_frame_, &ready, &handler);
    if (ready == nullptr) continue;
    if (!watchdog.TryStartInlineHandler()) {
      RunHandler(std::move(ready), handler);
      continue;
    }
    // Run the handler on this thread, which has the request in hand: no
    // thread is woken on the call's path. The reading role is released
    // without waking anyone: a quick handler is done, and this thread reads
    // again, before anyone needed it; if the handler runs longer than the
    // watchdog's grace, the watchdog hands the role to a standby thread
    // (reading_role.h), so the connection never stays unread for long.
    reading_role_.ReleaseForInlineHandler(absl::Now());
    handler->Run(*ready);
    ready->FinishIfHandlerDidNot();
    watchdog.InlineHandlerDone();
    return true;
  }
}

void ServerConnection::EndConnection() {
  framed_.transport().Shutdown();
  {
    internal::MutexLock lock(&mu_);
    going_away_ = true;
  }
  reading_role_.Close();
  CancelAll();  // the client is gone: every call of this connection ends
  core_.ConnectionEnded();
}

void ServerConnection::RefuseCall(uint32_t stream_id, const absl::Status& status) {
  std::string out;
  AppendTrailers(stream_id, status, {}, MetadataLimitsOf(core_.options()), &out);
  framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
}

void ServerConnection::StartCall(uint32_t stream_id, const Frame& frame) {
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
      if (m.descriptor.name.empty()) stream->KeepMethodName(call.method);  // generic
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
      StartCall(h.stream_id, frame);  // refused in TRAILERS if oversized
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
  std::shared_ptr<ChildCalls> cancelled_children;  // set by a CANCEL only
  {
    internal::MutexLock lock(&mu_);
    auto it = streams_.find(h.stream_id);
    if (it == streams_.end()) return;  // finished already, or never existed
    if (!HandleStreamFrameLocked(*it->second, frame, &cancelled_children)) return;
    ServerStream& s = *it->second;
    s.cv_.SignalAll();
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
  {
    internal::MutexLock lock(&mu_);
    for (auto& entry : streams_) {
      ServerStream& s = *entry.second;
      if (std::shared_ptr<ChildCalls> c = s.CancelLocked()) children.push_back(std::move(c));
      s.cv_.SignalAll();
      // A handler still waiting for its request runs now, sees the
      // cancellation and finishes, so that every call ends.
      if (s.deferred_handler_ != nullptr) {
        deferred.emplace_back(entry.second, std::exchange(s.deferred_handler_, nullptr));
      }
    }
  }
  for (auto& c : children) c->CancelAll();
  for (auto& [stream, handler] : deferred) RunHandler(std::move(stream), handler);
}

bool ServerConnection::HandleStreamFrameLocked(ServerStream& s, Frame& frame,
                                               std::shared_ptr<ChildCalls>* cancelled_children) {
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

void ServerConnection::Join() { reading_role_.Join(); }

bool ServerConnection::finished() {
  if (!reading_role_.finished()) return false;
  internal::MutexLock lock(&mu_);
  return streams_.empty();
}

}  // namespace ipcrpc::internal
