#include "runtime/internal/server_stream.h"

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "runtime/internal/buffer_fields.h"
#include "runtime/internal/server_connection.h"
#include "runtime/internal/server_core.h"
#include "wire/compression.h"

namespace ipcrpc {

bool ServerContext::IsCancelled() const { return stream_ != nullptr && stream_->cancelled(); }

namespace internal {

void AppendTrailers(uint32_t stream_id, absl::Status status, const Metadata& metadata,
                    const MetadataLimits& limits, std::string* out) {
  static const Metadata kNone;
  const Metadata* sent = &metadata;
  if (absl::Status size = CheckMetadataSize(metadata, limits, "trailing metadata"); !size.ok()) {
    status = std::move(size);  // the handler's metadata does not fit: the call fails
    sent = &kNone;
  }
  if (status.ok() && sent->empty()) {
    // The encoding of Trailers{code: 0} with no metadata is empty (proto3
    // omits zero fields): skip building the message.
    AppendFrame(FrameType::kTrailers, stream_id, {}, out);
    return;
  }
  wire::Trailers trailers;
  trailers.set_code(static_cast<int32_t>(status.code()));
  trailers.set_message(StatusMessageForWire(status.message()));
  MetadataToWire(*sent, trailers.mutable_metadata());
  AppendProtoFrame(FrameType::kTrailers, stream_id, trailers, trailers.ByteSizeLong(), out);
}


ServerStream::ServerStream(std::shared_ptr<ServerConnection> connection, uint32_t id,
                           absl::string_view method, absl::Time deadline,
                           Metadata client_metadata)
    : connection_(std::move(connection)), id_(id) {
  context_.method_ = method;
  context_.deadline_ = deadline;
  context_.client_metadata_ = std::move(client_metadata);
  context_.peer_ = connection_->framed_.transport().peer();
  context_.stream_ = this;
  context_.compression_ = connection_->core_.options().default_compression_algorithm;
  send_window_ = connection_->peer_hello_.initial_stream_window();
  receive_window_ = connection_->core_.options().stream_window_bytes;
  if (connection_->shared_buffers_ != nullptr) {
    context_.buffers().set_session(connection_->shared_buffers_);
  }
}

void ServerStream::KeepMethodName(absl::string_view method) {
  kept_method_ = std::string(method);
  context_.method_ = kept_method_;
}

bool ServerStream::cancelled() const {
  if (cancelled_.load(std::memory_order_acquire)) return true;
  return context_.deadline_ != absl::InfiniteFuture() && absl::Now() >= context_.deadline_;
}

std::shared_ptr<ChildCalls> ServerStream::child_calls(bool* cancelled) const {
  internal::MutexLock lock(&connection_->mu_);
  if (child_calls_ == nullptr) child_calls_ = std::make_shared<ChildCalls>();
  // Under the mutex every cancellation takes: a cancellation either comes
  // before (seen here) or after (and then finds child_calls_).
  *cancelled = cancelled_.load(std::memory_order_acquire);
  return child_calls_;
}

std::shared_ptr<ChildCalls> ServerStream::CancelLocked() {
  cancelled_.store(true, std::memory_order_release);
  return child_calls_;
}

bool ServerStream::Read(google::protobuf::MessageLite* message) {
  ServerConnection& c = *connection_;
  std::string payload;
  uint8_t compression = 0;
  std::vector<ScopedFd> fds;
  std::vector<ReceivedBuffer> buffers;
  uint32_t credit = 0;
  {
    internal::MutexLock lock(&c.mu_);
    while (inbox_.empty() && !half_closed_ && !reads_ended_ && forced_status_.ok() &&
           !cancelled()) {
      cv_.WaitWithDeadline(&c.mu_, context_.deadline_);
    }
    if (inbox_.empty() || reads_ended_ || !forced_status_.ok() || cancelled()) return false;
    payload = std::move(inbox_.front().payload);
    compression = inbox_.front_compression();
    fds = std::move(inbox_.front().fds);
    buffers = std::move(inbox_.front().buffers);
    const uint32_t table_bytes = inbox_.front().table_bytes;
    inbox_.pop_front();
    unacked_bytes_ += static_cast<uint32_t>(payload.size()) + table_bytes;
    if (!half_closed_ && unacked_bytes_ >= c.core_.options().stream_window_bytes / 2) {
      credit = unacked_bytes_;
      unacked_bytes_ = 0;
      receive_window_ += credit;
    }
  }
  if (credit > 0) {
    std::string out;
    AppendCreditFrame(id_, credit, &out);
    c.framed_.Write(out, absl::Now() + kControlWriteTimeout).IgnoreError();
  }
  if (compression != kCompressionNone) {
    std::string plain;
    absl::Status decompressed =
        Decompress(compression, payload, c.core_.options().max_message_size, &plain);
    if (!decompressed.ok()) {
      internal::MutexLock lock(&c.mu_);
      forced_status_ = absl::Status(decompressed.code(),
                                    absl::StrCat("request message: ", decompressed.message()));
      return false;
    }
    payload.swap(plain);
  }
  bool parsed;
  if (fds.empty()) {
    parsed = message->ParseFromString(payload);
    if (parsed) ClearFdHandles(message);  // a handle the peer made up names nothing
    // A message without descriptors drops those the last one left untaken.
    if (received_fds_) context_.fds().Replace({});
    received_fds_ = false;
  } else {
    absl::string_view bytes, table;
    parsed = SplitFdTable(payload, fds.size(), &bytes, &table) &&
             message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    if (parsed) {
      BindFds(message, table, std::move(fds), &context_.fds());
      received_fds_ = true;
    }
  }
  // Shared buffers (PROTOCOL.md §13): the last request's replace those of
  // the one before; a request that did not parse releases its own.
  if (!buffers.empty() || received_buffers_) {
    if (!parsed) buffers.clear();
    BindSharedBuffers(message, std::move(buffers), &context_.buffers());
    received_buffers_ = parsed;
  }
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

absl::Status ServerStream::AppendHeadersLocked(std::string* out) {
  if (headers_sent_) return absl::OkStatus();
  headers_sent_ = true;
  if (context_.initial_metadata_.empty()) return absl::OkStatus();
  IPCRPC_RETURN_IF_ERROR(CheckMetadataSize(context_.initial_metadata_,
                                           MetadataLimitsOf(connection_->core_.options()),
                                           "initial metadata"));
  wire::Headers headers;
  MetadataToWire(context_.initial_metadata_, headers.mutable_metadata());
  AppendProtoFrame(FrameType::kHeaders, id_, headers, headers.ByteSizeLong(), out);
  return absl::OkStatus();
}

bool ServerStream::SendInitialMetadata() {
  ServerConnection& c = *connection_;
  std::string out;
  {
    internal::MutexLock lock(&c.mu_);
    if (headers_sent_ || finished_ || cancelled()) return !cancelled();
    if (context_.initial_metadata_.empty()) {
      // An empty HEADERS frame still tells the client the call has started.
      headers_sent_ = true;
      AppendFrame(FrameType::kHeaders, id_, {}, &out);
    } else if (absl::Status s = AppendHeadersLocked(&out); !s.ok()) {
      forced_status_ = std::move(s);
      return false;
    }
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

uint8_t ServerStream::ResponseCompression() const {
  const uint8_t id = static_cast<uint8_t>(context_.compression_);
  return PeerAccepts(connection_->peer_hello_.accept_compression(), id) ? id : kCompressionNone;
}

bool ServerStream::AtEndOfStream() {
  ServerConnection& c = *connection_;
  internal::MutexLock lock(&c.mu_);
  while (inbox_.empty() && !half_closed_ && !reads_ended_ && forced_status_.ok() &&
           !cancelled()) {
    cv_.WaitWithDeadline(&c.mu_, context_.deadline_);
  }
  return inbox_.empty() || reads_ended_;
}

bool ServerStream::ClientHalfClosed(size_t* queued) {
  ServerConnection& c = *connection_;
  internal::MutexLock lock(&c.mu_);
  if (!half_closed_ || reads_ended_ || !forced_status_.ok() || cancelled()) return false;
  *queued = inbox_.size();
  return true;
}

void ServerStream::EndReads() {
  ServerConnection& c = *connection_;
  internal::MutexLock lock(&c.mu_);
  reads_ended_ = true;
  cv_.SignalAll();
}

bool ServerStream::Write(const google::protobuf::MessageLite& message) {
  ServerConnection& c = *connection_;
  size_t size = message.ByteSizeLong();
  thread_local OutgoingFds fds;
  fds.Clear();
  absl::Status size_ok = CollectFds(message, c.peer_hello_.max_fds_per_message(),
                                    c.framed_.transport().description(), &fds);
  if (size_ok.ok()) {
    size_ok = CollectSharedBuffers(message, c.shared_buffers_,
                                   c.framed_.transport().description(), &fds);
  }
  // Buffers counted as sent are uncounted unless the message goes out.
  absl::Cleanup uncount = [] { fds.RollBackBuffers(); };
  if (size_ok.ok()) size_ok = CheckSendSize(size + fds.table.size());
  std::string compressed;
  const uint8_t compression = ResponseCompression();
  // A message that carries descriptors or buffers is never compressed
  // (PROTOCOL.md §10, §13).
  const bool is_compressed = compression != kCompressionNone && size_ok.ok() &&
                             !fds.has_trailer() &&
                             CompressMessage(message, size, compression, &compressed);
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
    if (absl::Status s = AppendHeadersLocked(&out); !s.ok()) {
      forced_status_ = std::move(s);
      return false;
    }
    // The window counts the bytes on the wire (PROTOCOL.md §7), the
    // descriptor table included (§10).
    send_window_ -= static_cast<int64_t>(is_compressed ? compressed.size()
                                                       : size + fds.table.size());
  }
  fds.CommitBuffers();  // from here the message is written (or the connection breaks)
  if (is_compressed) {
    return c.framed_
        .WriteCompressedMessage(&out, id_, compressed, compression,
                                FramedConnection::NoFramesAfter, context_.deadline_)
        .ok();
  }
  return c.framed_
      .WriteMessage(&out, id_, &message, size, FramedConnection::NoFramesAfter,
                    context_.deadline_, &fds)
      .ok();
}

absl::Status ServerStream::StatusToSend(const absl::Status& status) {
  {
    internal::MutexLock lock(&connection_->mu_);
    if (!forced_status_.ok()) return forced_status_;
  }
  if (!cancelled_.load(std::memory_order_acquire) &&
      context_.deadline_ != absl::InfiniteFuture() && absl::Now() >= context_.deadline_) {
    return absl::DeadlineExceededError("deadline exceeded on the server");
  }
  return status;
}

void ServerStream::FinishIfHandlerDidNot() {
  if (finish_called_.load(std::memory_order_acquire)) return;
  // A callback method returns with its call in progress: its reactor finishes it.
  if (reactor_started_.load(std::memory_order_acquire)) return;
  Finish(absl::InternalError("handler returned without finishing the call"), nullptr);
}

void ServerStream::Finish(const absl::Status& status,
                          const google::protobuf::MessageLite* last_message) {
  finish_called_.store(true, std::memory_order_release);
  ServerConnection& c = *connection_;
  absl::Status final_status = status;
  std::string& out = OutgoingFrameBuffer();
  size_t size = 0;
  thread_local OutgoingFds fds;
  fds.Clear();
  // Buffers counted as sent are uncounted unless the response goes out.
  absl::Cleanup uncount = [] { fds.RollBackBuffers(); };
  // Request buffers the handler did not take are released before the
  // response goes out, so the client can reuse them as soon as it has it.
  context_.buffers().DropReceived();
  if (c.shared_buffers_ != nullptr) c.shared_buffers_->FlushReleases();
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
        absl::Status size_ok = CollectFds(*last_message, c.peer_hello_.max_fds_per_message(),
                                          c.framed_.transport().description(), &fds);
        if (size_ok.ok()) {
          size_ok = CollectSharedBuffers(*last_message, c.shared_buffers_,
                                         c.framed_.transport().description(), &fds);
        }
        if (size_ok.ok()) size_ok = CheckSendSize(size + fds.table.size());
        if (!size_ok.ok()) {
          final_status = std::move(size_ok);
          last_message = nullptr;
        }
      }
      if (absl::Status s = AppendHeadersLocked(&out); !s.ok()) final_status = std::move(s);
      if (!final_status.ok()) last_message = nullptr;
    }
  }
  if (send) {
    // The last message is serialized after the lock is released (the handler
    // keeps it alive until Finish returns); a large one while it is written.
    auto append_trailers = [&](std::string* after) {
      AppendTrailers(id_, final_status, context_.trailing_metadata_,
                     MetadataLimitsOf(c.core_.options()), after);
    };
    std::string compressed;
    const uint8_t compression = last_message != nullptr ? ResponseCompression() : 0;
    if (last_message != nullptr) fds.CommitBuffers();  // written (or the connection breaks)
    if (compression != kCompressionNone && !fds.has_trailer() &&
        CompressMessage(*last_message, size, compression, &compressed)) {
      c.framed_
          .WriteCompressedMessage(&out, id_, compressed, compression, append_trailers,
                                  absl::Now() + kControlWriteTimeout)
          .IgnoreError();
    } else {
      c.framed_
          .WriteMessage(&out, id_, last_message, size, append_trailers,
                        absl::Now() + kControlWriteTimeout, last_message != nullptr ? &fds : nullptr)
          .IgnoreError();
    }
  }
  c.StreamFinished(this);
}

}  // namespace internal
}  // namespace ipcrpc
