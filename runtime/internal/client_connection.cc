// ClientConnection and ClientStream: one connection's stream table, its
// reading role (leader/follower: a waiting caller reads for everyone) and the
// frame dispatch that feeds the streams. Over 500 lines because the three
// share one lock and one state machine; the async poller lives apart
// (async_poller.cc).

#include "runtime/internal/client_connection.h"

#include <time.h>

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "runtime/internal/buffer_fields.h"
#include "runtime/internal/call_limits.h"
#include "wire/compression.h"

namespace ipcrpc::internal {
namespace {

// How long a connection must have received nothing before a new call asks
// its transport whether the peer is still there.
constexpr int64_t kQuietBeforeProbeMs = 10;

// Milliseconds on CLOCK_MONOTONIC_COARSE: a few nanoseconds through the vDSO,
// a few milliseconds of resolution.
int64_t CoarseMonotonicMillis() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

uint64_t TimeoutMicros(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return 0;
  int64_t us = absl::ToInt64Microseconds(deadline - absl::Now());
  return us < 1 ? 1 : static_cast<uint64_t>(us);
}

absl::Status StatusFromTrailers(const wire::Trailers& t) {
  int code = t.code();
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(absl::StrCat("server sent unknown status code ", code,
                                           ": ", t.message()));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), t.message());
}

}  // namespace

// ---------------------------------------------------------------------------
// ClientStream

ClientStream::ClientStream(std::shared_ptr<ClientConnection> connection, uint32_t id,
                           ClientContext* context)
    : connection_(std::move(connection)),
      id_(id),
      context_(context),
      deadline_(context ? context->deadline() : absl::InfiniteFuture()),
      receive_window_(connection_->options_.stream_window_bytes) {}

ClientStream::~ClientStream() {
  if (context_ != nullptr) {
    internal::MutexLock lock(&context_->mu_);
    if (context_->stream_ == this) context_->stream_ = nullptr;
  }
  bool cancel = false;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (!done_) {
      connection_->FinishStreamLocked(this, absl::CancelledError("call abandoned"));
      cancel = true;
    }
  }
  if (cancel) connection_->SendControl(FrameType::kCancel, id_);
}

void ClientStream::Fail(absl::Status status) {
  ClientConnection& c = *connection_;
  bool interrupt;
  {
    internal::MutexLock lock(&c.mu_);
    if (done_) return;
    c.FinishStreamLocked(this, std::move(status));
    interrupt = c.reading_;
  }
  c.SendControl(FrameType::kCancel, id_);
  // Whoever is reading re-checks its condition (it may be waiting for us).
  if (interrupt) c.framed_.transport().Interrupt();
}

void ClientStream::Cancel() { Fail(absl::CancelledError("call cancelled by the client")); }

absl::Status ClientStream::Write(const google::protobuf::MessageLite& message) {
  ClientConnection& c = *connection_;
  size_t size = message.ByteSizeLong();
  thread_local OutgoingFds fds;
  fds.Clear();
  absl::Status checked = CollectFds(message, c.peer_hello_.max_fds_per_message(),
                                    *c.description_, &fds);
  if (checked.ok()) checked = CollectSharedBuffers(message, c.shared_buffers_, *c.description_, &fds);
  // Buffers counted as sent are uncounted unless the message goes out.
  absl::Cleanup uncount = [] { fds.RollBackBuffers(); };
  if (checked.ok()) checked = c.CheckSendSize(size + fds.table.size());
  if (!checked.ok()) {
    Fail(checked);
    return checked;
  }
  std::string compressed;
  // A message that carries descriptors or buffers is never compressed
  // (PROTOCOL.md §10, §13).
  const bool is_compressed = compression_ != kCompressionNone && !fds.has_trailer() &&
                             CompressMessage(message, size, compression_, &compressed);
  {
    internal::MutexLock lock(&c.mu_);
    if (done_) {
      return final_status_.ok() ? absl::FailedPreconditionError("the call has already finished")
                                : final_status_;
    }
    if (writes_done_) return absl::FailedPreconditionError("Write after WritesDone");
    bool in_time = c.AwaitLocked(this, [this] { return send_window_ > 0 || done_; }, deadline_);
    if (!in_time) {
      c.mu_.Unlock();
      Fail(absl::DeadlineExceededError("deadline exceeded while waiting to send"));
      c.mu_.Lock();
    }
    if (done_) return final_status_;
    // The window counts the bytes on the wire (PROTOCOL.md §7), the
    // descriptor table included (§10).
    send_window_ -= static_cast<int64_t>(is_compressed ? compressed.size() : size + fds.table.size());
  }
  fds.CommitBuffers();  // from here the message is written (or the connection breaks)
  absl::Status status =
      is_compressed
          ? c.framed_.WriteCompressedMessage(&OutgoingFrameBuffer(), id_, compressed, compression_,
                                             FramedConnection::NoFramesAfter, deadline_)
          : c.framed_.WriteMessage(&OutgoingFrameBuffer(), id_, &message, size,
                                   FramedConnection::NoFramesAfter, deadline_, &fds);
  if (!status.ok()) {
    internal::MutexLock lock(&c.mu_);
    c.BreakLocked(status);
    return final_status_;
  }
  return absl::OkStatus();
}

absl::Status ClientStream::WritesDone() {
  {
    internal::MutexLock lock(&connection_->mu_);
    if (done_) return final_status_;
    if (writes_done_) return absl::OkStatus();
    writes_done_ = true;
  }
  connection_->SendControl(FrameType::kHalfClose, id_);
  return absl::OkStatus();
}

bool ClientStream::Read(google::protobuf::MessageLite* message) {
  ClientConnection& c = *connection_;
  std::string payload;
  uint8_t compression = 0;
  std::vector<ScopedFd> fds;
  std::vector<ReceivedBuffer> buffers;
  uint32_t credit = 0;
  {
    internal::MutexLock lock(&c.mu_);
    bool in_time = c.AwaitLocked(this, [this] { return !inbox_.empty() || done_; }, deadline_);
    if (!in_time) {
      c.mu_.Unlock();
      Fail(absl::DeadlineExceededError("deadline exceeded waiting for a response"));
      c.mu_.Lock();
    }
    if (inbox_.empty()) return false;
    payload = std::move(inbox_.front().payload);
    compression = inbox_.front_compression();
    fds = std::move(inbox_.front().fds);
    buffers = std::move(inbox_.front().buffers);
    const uint32_t table_bytes = inbox_.front().table_bytes;
    inbox_.pop_front();
    unacked_bytes_ += static_cast<uint32_t>(payload.size()) + table_bytes;
    if (!done_ && unacked_bytes_ >= c.options_.stream_window_bytes / 2) {
      credit = unacked_bytes_;
      unacked_bytes_ = 0;
      receive_window_ += credit;
    }
  }
  if (credit > 0) {
    std::string out;
    AppendCreditFrame(id_, credit, &out);
    c.framed_.Write(out, absl::Now() + absl::Seconds(5)).IgnoreError();
  }
  if (compression != kCompressionNone) {
    std::string plain;
    absl::Status decompressed =
        Decompress(compression, payload, c.options_.max_receive_message_size, &plain);
    if (!decompressed.ok()) {
      Fail(absl::Status(decompressed.code(),
                        absl::StrCat("response message: ", decompressed.message())));
      return false;
    }
    payload.swap(plain);
  }
  const size_t size = payload.size();
  const bool parsed = Parse(payload, std::move(fds), std::move(buffers), message);
  c.framed_.reader().Recycle(std::move(payload));
  if (!parsed) {
    Fail(absl::InternalError(absl::StrCat("could not parse a response message of ", size,
                                          " bytes as ", message->GetTypeName())));
    return false;
  }
  return true;
}

bool ClientStream::Parse(const std::string& payload, std::vector<ScopedFd> fds,
                         std::vector<ReceivedBuffer> buffers,
                         google::protobuf::MessageLite* message) {
  bool parsed;
  if (fds.empty()) {
    // A message without descriptors drops those the last one left untaken.
    if (received_fds_ && context_ != nullptr) context_->fds().Replace({});
    received_fds_ = false;
    parsed = message->ParseFromString(payload);
    if (parsed) ClearFdHandles(message);  // a handle the peer made up names nothing
  } else {
    absl::string_view bytes, table;
    parsed = SplitFdTable(payload, fds.size(), &bytes, &table) &&
             message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    if (parsed) {
      BindFds(message, table, std::move(fds), context_ ? &context_->fds() : nullptr);
      received_fds_ = true;
    }  // else `fds` close here
  }
  // Shared buffers (PROTOCOL.md §13) likewise: the last message's replace
  // those of the one before; a message that did not parse releases its own.
  if (!buffers.empty() || received_buffers_) {
    BindSharedBuffers(message, parsed ? std::move(buffers) : std::vector<ReceivedBuffer>(),
                      context_ ? &context_->buffers() : nullptr);
    received_buffers_ = parsed && context_ != nullptr;
    if (!parsed && !buffers.empty()) {
      std::shared_ptr<SharedBufferSession> session = buffers.front().session_ptr();
      buffers.clear();
      session->FlushReleases();
    }
  }
  return parsed;
}

absl::Status ClientStream::Finish() {
  ClientConnection& c = *connection_;
  internal::MutexLock lock(&c.mu_);
  bool in_time = c.AwaitLocked(this, [this] { return done_; }, deadline_);
  if (!in_time) {
    c.mu_.Unlock();
    Fail(absl::DeadlineExceededError("deadline exceeded waiting for the call to finish"));
    c.mu_.Lock();
  }
  return final_status_;
}

// ---------------------------------------------------------------------------
// ClientConnection

ClientConnection::ClientConnection(std::unique_ptr<Transport> transport,
                                   const ChannelOptions& options)
    : framed_(std::move(transport), options.max_receive_message_size,
              ControlFrameLimit(MetadataLimitsOf(options))),
      options_(options),
      description_(std::make_shared<const std::string>(framed_.transport().description())),
      poller_(*this, mu_) {}

ClientConnection::~ClientConnection() {
  if (shared_buffers_ != nullptr) shared_buffers_->Close();
}

absl::StatusOr<std::shared_ptr<ClientConnection>> ClientConnection::Establish(
    std::unique_ptr<Transport> transport, const ChannelOptions& options,
    absl::Time deadline) {
  std::shared_ptr<ClientConnection> c(new ClientConnection(std::move(transport), options));
  wire::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_max_message_size(static_cast<uint32_t>(
      std::min<size_t>(options.max_receive_message_size, UINT32_MAX)));
  hello.set_initial_stream_window(options.stream_window_bytes);
  hello.set_agent(kAgent);
  if (options.accept_compression) hello.set_accept_compression(kSupportedCompression);
  hello.set_shared_buffers(options.shared_buffers);
  hello.set_max_fds_per_message(options.max_fds_per_message);
  absl::StatusOr<wire::Hello> theirs = c->framed_.ExchangeHello(hello, deadline);
  if (!theirs.ok()) {
    return absl::Status(theirs.status().code(),
                        absl::StrCat("setting up the connection to ", *c->description_,
                                     ": ", theirs.status().message()));
  }
  c->peer_hello_ = std::move(*theirs);
  if (c->framed_.announced_shared_buffers() && c->peer_hello_.shared_buffers()) {
    std::weak_ptr<ClientConnection> weak = c;
    c->shared_buffers_ = std::make_shared<SharedBufferSession>(
        *c->description_,
        SharedBufferLimits{options.shared_buffer_pool_bytes, options.shared_buffer_arena_bytes},
        [weak](absl::string_view frames, absl::Span<const int> fds) -> absl::Status {
          std::shared_ptr<ClientConnection> connection = weak.lock();
          if (connection == nullptr) return absl::UnavailableError("connection closed");
          return connection->framed_.WriteWithFds(frames, fds, absl::Now() + absl::Seconds(5));
        });
    // A client reads only while one of its calls waits: a full pool reads the
    // releases already waiting before giving up.
    c->shared_buffers_->set_read_waiting_frames([weak] {
      if (std::shared_ptr<ClientConnection> connection = weak.lock()) {
        connection->ReadWaitingFrames();
      }
    });
  }
  c->last_frame_ms_.store(CoarseMonotonicMillis(), std::memory_order_relaxed);
  return c;
}

std::unique_ptr<ClientStream> ClientConnection::StartStream(
    const MethodDescriptor& method, ClientContext* context,
    const google::protobuf::MessageLite* first_request, bool half_close) {
  const size_t request_size = first_request != nullptr ? first_request->ByteSizeLong() : 0;
  const uint8_t compression = RequestCompression(context);
  thread_local OutgoingFds fds;  // reused: no allocation per call
  fds.Clear();
  absl::Status fd_status =
      first_request == nullptr
          ? absl::OkStatus()
          : CollectFds(*first_request, peer_hello_.max_fds_per_message(), *description_, &fds);
  if (fd_status.ok() && first_request != nullptr) {
    fd_status = CollectSharedBuffers(*first_request, shared_buffers_, *description_, &fds);
  }
  // Buffers counted as sent are uncounted unless the request goes out.
  absl::Cleanup uncount = [] { fds.RollBackBuffers(); };
  std::string compressed;  // the first request, if it goes compressed (never with descriptors)
  const bool is_compressed = first_request != nullptr && compression != kCompressionNone &&
                             !fds.has_trailer() && CheckSendSize(request_size).ok() &&
                             CompressMessage(*first_request, request_size, compression, &compressed);
  const size_t request_wire_size = is_compressed ? compressed.size() : request_size;
  // Streams must reach the server in id order: hold start_mu_ from choosing
  // the id until CALL_START has been written.
  internal::MutexLock start_lock(&start_mu_);
  std::unique_ptr<ClientStream> stream;
  {
    internal::MutexLock lock(&mu_);
    uint32_t id = next_stream_id_++;
    stream.reset(new ClientStream(shared_from_this(), id, context));
    absl::Status refuse;
    if (!broken_.ok()) {
      refuse = broken_;
    } else if (going_away_) {
      refuse = absl::UnavailableError(
          absl::StrCat("server at ", *description_, " is shutting down"));
    } else if (id == 0 || next_stream_id_ == 0) {
      GoAwayLocked();  // ids exhausted: the channel makes a new connection
      refuse = absl::UnavailableError("stream ids on this connection are exhausted");
    }
    if (!refuse.ok()) {
      stream->done_ = true;
      stream->final_status_ = refuse;
      return stream;
    }
    // Set before anything is sent; a call that fails below never sends.
    stream->send_window_ = static_cast<int64_t>(peer_hello_.initial_stream_window()) -
                           static_cast<int64_t>(request_wire_size);
    stream->compression_ = compression;
    stream->writes_done_ = half_close;
    streams_[id] = stream.get();
  }
  if (context != nullptr) {
    bool cancelled;
    {
      internal::MutexLock lock(&context->mu_);
      context->peer_ = framed_.transport().peer();
      context->transport_ = description_;
      cancelled = context->cancelled_;
      if (!cancelled) context->stream_ = stream.get();
    }
    if (cancelled) {
      stream->Fail(absl::CancelledError("call cancelled by the client before it started"));
      return stream;
    }
    absl::Status valid = ValidateMetadata(context->send_metadata());
    if (valid.ok()) {
      valid = CheckMetadataSize(context->send_metadata(), MetadataLimitsOf(options_),
                                "request metadata");
    }
    if (!valid.ok()) {
      stream->Fail(valid);
      return stream;
    }
  }
  const absl::Time deadline = stream->deadline_;
  if (deadline != absl::InfiniteFuture() && deadline <= absl::Now()) {
    stream->Fail(absl::DeadlineExceededError("deadline had passed before the call started"));
    return stream;
  }
  if (first_request != nullptr) {
    absl::Status s = fd_status;
    if (s.ok()) s = CheckSendSize(request_size + fds.table.size());
    if (!s.ok()) {
      stream->Fail(std::move(s));
      return stream;
    }
    if (fds.has_trailer()) {  // the tables count against the window, as the server counts them
      internal::MutexLock lock(&mu_);
      stream->send_window_ -= static_cast<int64_t>(fds.table.size());
    }
  }

  // Reused per thread: after the first call, setting the method name and
  // clearing the metadata allocate nothing.
  thread_local wire::CallStart start;
  start.Clear();
  start.mutable_method()->assign(method.name.data(), method.name.size());
  start.set_timeout_micros(TimeoutMicros(deadline));
  if (context != nullptr) MetadataToWire(context->send_metadata(), start.mutable_metadata());
  std::string& out = OutgoingFrameBuffer();
  AppendProtoFrame(FrameType::kCallStart, stream->id_, start, start.ByteSizeLong(), &out);
  const uint32_t id = stream->id_;
  auto append_half_close = [&](std::string* after) {
    if (half_close) AppendFrame(FrameType::kHalfClose, id, {}, after);
  };
  fds.CommitBuffers();  // from here the request is written (or the connection breaks)
  absl::Status status =
      is_compressed
          ? framed_.WriteCompressedMessage(&out, id, compressed, compression, append_half_close,
                                           deadline)
          : framed_.WriteMessage(&out, id, first_request, request_size, append_half_close,
                                 deadline, &fds);
  if (!status.ok()) {
    internal::MutexLock lock(&mu_);
    BreakLocked(status);
  }
  return stream;
}

bool ClientConnection::UsableForNewCall() {
  if (!usable()) return false;
  const int64_t now = CoarseMonotonicMillis();
  if (now - last_frame_ms_.load(std::memory_order_relaxed) < kQuietBeforeProbeMs) return true;
  // Quiet for a while: ask the transport (one non-blocking system call), at
  // most once per quiet period.
  last_frame_ms_.store(now, std::memory_order_relaxed);
  if (!framed_.transport().PeerGone()) return true;
  internal::MutexLock lock(&mu_);
  BreakLocked(absl::UnavailableError(
      absl::StrCat("connection ", *description_, " lost while idle: the server closed it")));
  return false;
}

bool ClientConnection::AwaitLocked(ClientStream* stream, const std::function<bool()>& ready,
                                   absl::Time deadline) {
  bool in_time = true;
  while (!ready()) {
    if (!broken_.ok()) break;  // every stream has been finished already
    if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
      in_time = false;
      break;
    }
    if (!reading_) {
      reading_ = true;
      mu_.Unlock();
      absl::Status status = framed_.reader().ReadFrame(&read_frame_, deadline);
      mu_.Lock();
      reading_ = false;
      if (status.ok()) {
        last_frame_ms_.store(CoarseMonotonicMillis(), std::memory_order_relaxed);
        HandleFrameLocked(read_frame_);
      } else if (!absl::IsAborted(status) && !absl::IsDeadlineExceeded(status)) {
        BreakLocked(status);
      }
      if (!pending_control_.empty() || QueuedReleases()) {
        mu_.Unlock();
        FlushPendingControl();
        // Releases queued while handling the frame (a failed message's buffers).
        if (shared_buffers_ != nullptr) shared_buffers_->FlushReleases();
        mu_.Lock();
      }
      continue;
    }
    ++total_waiters_;
    if (stream != nullptr) {
      ++stream->waiters_;
      stream->cv_.WaitWithDeadline(&mu_, deadline);
      --stream->waiters_;
    } else {
      poller_.WaitLocked(deadline);
    }
    --total_waiters_;
  }
  // Leaving: if nobody reads now, hand the reading role to a waiting thread.
  if (!reading_ && total_waiters_ > 0) WakeOneWaiterLocked();
  return in_time;
}

void ClientConnection::WakeOneWaiterLocked() {
  for (const auto& entry : streams_) {
    if (entry.second->waiters_ > 0) {
      entry.second->cv_.Signal();
      return;
    }
  }
  poller_.WakeIfWaitingLocked();
}

void ClientConnection::FinishStreamLocked(ClientStream* s, absl::Status status) {
  if (s->done_) return;
  s->done_ = true;
  s->final_status_ = std::move(status);
  streams_.erase(s->id_);
  s->cv_.SignalAll();
  poller_.StreamFinishedLocked(s);
}

void ClientConnection::GoAwayLocked() {
  going_away_ = true;
  usable_.store(false, std::memory_order_release);
}

void ClientConnection::BreakLocked(const absl::Status& why) {
  if (!broken_.ok()) return;
  usable_.store(false, std::memory_order_release);
  broken_ = absl::UnavailableError(
      absl::StrCat("connection to ", *description_, " lost: ", why.message()));
  std::vector<ClientStream*> all;
  all.reserve(streams_.size());
  for (const auto& entry : streams_) all.push_back(entry.second);
  for (ClientStream* s : all) FinishStreamLocked(s, broken_);
  framed_.transport().Shutdown();
  // The peer's segments and this side's pool are forgotten (writers and
  // views still alive keep their own mappings).
  if (shared_buffers_ != nullptr) shared_buffers_->Close();
  poller_.ConnectionBrokenLocked();
}

absl::Status ClientConnection::CheckSendSize(size_t size) const {
  size_t limit = std::min<size_t>(options_.max_send_message_size, peer_hello_.max_message_size());
  if (size <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "request message of ", size, " bytes exceeds the limit of ", limit, " bytes (",
      limit == options_.max_send_message_size ? "this client's max_send_message_size"
                                              : "the server's max message size",
      ")"));
}

uint8_t ClientConnection::RequestCompression(const ClientContext* context) const {
  CompressionAlgorithm wanted = options_.default_compression_algorithm;
  if (context != nullptr && context->compression_set_) wanted = context->compression_;
  const uint8_t id = static_cast<uint8_t>(wanted);
  return PeerAccepts(peer_hello_.accept_compression(), id) ? id : kCompressionNone;
}

absl::Status ClientConnection::ReceivedMessageError(size_t size) const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "response message of ", size, " bytes exceeds this client's max_receive_message_size of ",
      options_.max_receive_message_size, " bytes"));
}

void ClientConnection::HandleFrameLocked(Frame& frame) {
  const FrameHeader& h = frame.header;
  // Descriptors that no stream takes (an unknown or finished stream, a
  // failed message) are closed on return, not kept until the next frame.
  std::vector<ScopedFd> fds = std::move(frame.fds);
  frame.fds.clear();
  switch (h.type) {
    case FrameType::kPing:
      if (!(h.flags & kFlagPingAck)) {
        AppendFrame(FrameType::kPing, 0, frame.payload, &pending_control_, kFlagPingAck);
      }
      return;
    case FrameType::kGoAway: {
      wire::GoAway goaway;
      goaway.ParseFromString(frame.payload);
      GoAwayLocked();
      std::vector<ClientStream*> refused;
      for (const auto& entry : streams_) {
        if (entry.first > goaway.last_stream_id()) refused.push_back(entry.second);
      }
      for (ClientStream* s : refused) {
        FinishStreamLocked(s, absl::UnavailableError(absl::StrCat(
                                  "server is shutting down: ", goaway.reason())));
      }
      return;
    }
    case FrameType::kSegment:
    case FrameType::kSegmentRetire:
    case FrameType::kBufferRelease:
      HandleSharedBufferFrameLocked(frame, std::move(fds));
      return;
    case FrameType::kHello:
    case FrameType::kCallStart:
    case FrameType::kCancel:
      BreakLocked(absl::DataLossError(absl::StrCat(
          "protocol violation: server sent frame type ", static_cast<int>(h.type))));
      return;
    default:
      break;
  }
  // A MESSAGE's shared buffers are resolved whatever becomes of it, so that
  // a message dropped here still releases them (PROTOCOL.md §13); holds
  // dropped on the paths below queue their releases, sent after this frame.
  std::vector<ReceivedBuffer> buffers;
  absl::Status buffers_status;
  const size_t wire_size = frame.payload.size();
  if (h.type == FrameType::kMessage && (h.flags & kFlagSharedBuffers) && !frame.oversized) {
    buffers_status = TakeBufferTable(&frame.payload, fds.size(), shared_buffers_.get(), &buffers);
  }
  auto it = streams_.find(h.stream_id);
  if (it == streams_.end()) return;  // a stream we already finished locally
  ClientStream* s = it->second;
  switch (h.type) {
    case FrameType::kHeaders: {
      wire::Headers headers;
      absl::Status status;
      if (frame.oversized) {
        status = OversizedControlFrameError(h, MetadataLimitsOf(options_), "client");
      } else if (!headers.ParseFromString(frame.payload)) {
        status = absl::InternalError("malformed HEADERS frame from the server");
      } else if (s->context_ != nullptr) {
        status = MetadataFromWireWithin(headers.metadata(), MetadataLimitsOf(options_),
                                        "the server's initial metadata",
                                        &s->context_->initial_metadata_);
      }
      if (!status.ok()) {
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, std::move(status));
      }
      return;
    }
    case FrameType::kMessage:
      if (frame.oversized) {
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, ReceivedMessageError(h.length));
        return;
      }
      if (s->receive_window_ <= 0) {
        // The server sent beyond its flow-control window (PROTOCOL.md §7).
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, absl::ResourceExhaustedError(absl::StrCat(
                                  "server sent a message while its flow-control window was "
                                  "used up (stream window ",
                                  options_.stream_window_bytes, " bytes)")));
        return;
      }
      if (const uint8_t compression = CompressionOf(h.flags);
          compression != kCompressionNone &&
          !PeerAccepts(options_.accept_compression ? kSupportedCompression : 0, compression)) {
        // PROTOCOL.md §2: never sent to a client that did not offer it.
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, absl::InternalError(absl::StrCat(
                                  "server sent a message compressed with algorithm id ",
                                  compression, ", which this client did not accept")));
        return;
      }
      if (CompressionOf(h.flags) != kCompressionNone && h.fd_count > 0) {
        // A message with descriptors is never compressed (PROTOCOL.md §10).
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, absl::InternalError(
                                  "server sent a compressed message with file descriptors"));
        return;
      }
      if (frame.fds_lost) {
        // This process is out of descriptors: the message is lost, the
        // connection is not (PROTOCOL.md §10).
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, absl::ResourceExhaustedError(absl::StrCat(
                                  "a response came with ", h.fd_count,
                                  " file descriptors that this process could not receive: "
                                  "it is out of descriptors (EMFILE, RLIMIT_NOFILE)")));
        return;
      }
      if (!fds.empty() && !queued_fds_.TryAdd(fds.size(), kMaxQueuedFdsPerConnection)) {
        AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
        FinishStreamLocked(s, absl::ResourceExhaustedError(absl::StrCat(
                                  "the connection's unread responses already hold ",
                                  queued_fds_.count(), " file descriptors; at most ",
                                  kMaxQueuedFdsPerConnection, " are kept")));
        return;
      }
      if (h.flags & kFlagSharedBuffers) {
        if (CompressionOf(h.flags) != kCompressionNone) {
          AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
          FinishStreamLocked(s, absl::InternalError(
                                    "server sent a compressed message with shared buffers"));
          return;
        }
        if (!buffers_status.ok()) {
          AppendFrame(FrameType::kCancel, s->id_, {}, &pending_control_);
          FinishStreamLocked(s, absl::Status(buffers_status.code(),
                                             absl::StrCat("a response's shared buffers: ",
                                                          buffers_status.message())));
          return;
        }
        s->receive_window_ -= static_cast<int64_t>(wire_size);
        const auto table_bytes = static_cast<uint32_t>(wire_size - frame.payload.size());
        s->inbox_.push_back(std::move(frame.payload), kCompressionNone, std::move(fds),
                            &queued_fds_, std::move(buffers), table_bytes);
        s->cv_.SignalAll();
        return;
      }
      s->receive_window_ -= static_cast<int64_t>(frame.payload.size());
      s->inbox_.push_back(std::move(frame.payload), CompressionOf(h.flags), std::move(fds),
                          &queued_fds_);  // decompressed by Read
      s->cv_.SignalAll();
      return;
    case FrameType::kTrailers: {
      if (!frame.oversized && frame.payload.empty()) {
        FinishStreamLocked(s, absl::OkStatus());  // code 0, no message, no metadata
        return;
      }
      wire::Trailers trailers;
      if (frame.oversized) {
        FinishStreamLocked(s, OversizedControlFrameError(h, MetadataLimitsOf(options_), "client"));
        return;
      }
      if (!trailers.ParseFromString(frame.payload)) {
        FinishStreamLocked(s, absl::InternalError("malformed TRAILERS frame from the server"));
        return;
      }
      if (s->context_ != nullptr) {
        absl::Status within = MetadataFromWireWithin(
            trailers.metadata(), MetadataLimitsOf(options_), "the server's trailing metadata",
            &s->context_->trailing_metadata_);
        if (absl::IsResourceExhausted(within)) {
          FinishStreamLocked(s, std::move(within));
          return;
        }
      }
      FinishStreamLocked(s, StatusFromTrailers(trailers));
      return;
    }
    case FrameType::kCredit:
      uint32_t credit;
      if (!ParseCreditPayload(frame.payload, &credit)) {
        BreakLocked(absl::DataLossError("CREDIT frame with a payload that is not 4 bytes"));
        return;
      }
      s->send_window_ += credit;
      s->cv_.SignalAll();
      return;
    default:
      return;  // unknown frame types are skipped
  }
}

void ClientConnection::ReadWaitingFrames() {
  internal::MutexLock lock(&mu_);
  while (!reading_ && broken_.ok()) {
    reading_ = true;
    mu_.Unlock();
    absl::Status status = framed_.reader().ReadFrame(&read_frame_, absl::Now());
    mu_.Lock();
    reading_ = false;
    if (!status.ok()) {
      if (!absl::IsAborted(status) && !absl::IsDeadlineExceeded(status)) BreakLocked(status);
      break;  // nothing more waiting (a frame cut short resumes on the next read)
    }
    last_frame_ms_.store(CoarseMonotonicMillis(), std::memory_order_relaxed);
    HandleFrameLocked(read_frame_);
    if (!pending_control_.empty() || QueuedReleases()) {
      mu_.Unlock();
      FlushPendingControl();
      if (shared_buffers_ != nullptr) shared_buffers_->FlushReleases();
      mu_.Lock();
    }
  }
  // Hand the reading role on if a call started waiting meanwhile.
  if (!reading_ && total_waiters_ > 0) WakeOneWaiterLocked();
}

void ClientConnection::HandleSharedBufferFrameLocked(Frame& frame, std::vector<ScopedFd> fds) {
  const FrameHeader& h = frame.header;
  if (shared_buffers_ == nullptr) return;  // not negotiated: skipped like unknown types
  absl::Status status;
  if (h.stream_id != 0 || frame.oversized) {
    status = absl::DataLossError("shared-buffer frame on a stream other than 0, or oversized");
  } else if (h.type == FrameType::kSegment) {
    status = shared_buffers_->OnSegment(frame.payload, std::move(fds));
  } else if (h.type == FrameType::kSegmentRetire) {
    status = shared_buffers_->OnRetire(frame.payload);
  } else {
    status = shared_buffers_->OnRelease(frame.payload);
  }
  if (!status.ok()) BreakLocked(status);  // a protocol violation (PROTOCOL.md §13)
}

void ClientConnection::SendControl(FrameType type, uint32_t stream_id,
                                   absl::string_view payload) {
  std::string out;
  AppendFrame(type, stream_id, payload, &out);
  // Errors break the transport; the next reader reports them.
  framed_.Write(out, absl::Now() + absl::Seconds(5)).IgnoreError();
}

void ClientConnection::FlushPendingControl() {
  std::string out;
  {
    internal::MutexLock lock(&mu_);
    out.swap(pending_control_);
  }
  if (!out.empty()) framed_.Write(out, absl::Now() + absl::Seconds(5)).IgnoreError();
}

}  // namespace ipcrpc::internal
