#include "runtime/internal/framed_connection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "wire/compression.h"
#include "wire/refusal.h"

namespace ipcrpc::internal {
namespace {

// Protobuf serializes into a fixed chunk; each full chunk is written to the
// transport (the first write also carries `first`: frames and the header).
// The chunk is reused per thread and small enough to stay in cache, so the
// bytes are copied once more, cache to transport, instead of through a
// buffer as large as the message.
class TransportOutputStream final : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  // `fds` go with the first write (with `first`'s first byte).
  TransportOutputStream(Transport& transport, absl::string_view first, absl::Span<const int> fds,
                        absl::Time deadline)
      : transport_(transport), first_(first), fds_(fds), deadline_(deadline), chunk_(Chunk()) {}

  bool Next(void** data, int* size) override {
    if (used_ == kStreamedMessageBytes && !Flush()) return false;
    *data = chunk_ + used_;
    *size = static_cast<int>(kStreamedMessageBytes - used_);
    byte_count_ += kStreamedMessageBytes - used_;
    used_ = kStreamedMessageBytes;
    return true;
  }
  void BackUp(int count) override {
    used_ -= static_cast<size_t>(count);
    byte_count_ -= static_cast<size_t>(count);
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(byte_count_); }

  // A string or bytes field too long for the chunk's free space goes from the
  // message's own memory to the transport (one copy fewer), written with
  // what is buffered before it.
  bool AllowsAliasing() const override { return true; }
  bool WriteAliasedRaw(const void* data, int size) override {
    byte_count_ += static_cast<size_t>(size);
    return Flush(absl::string_view(static_cast<const char*>(data), static_cast<size_t>(size)));
  }

  // Writes what is buffered (and `first`, if not written yet), then `then`.
  bool Flush(absl::string_view then = {}) {
    if (!status_.ok()) return false;
    absl::string_view chunks[] = {first_, absl::string_view(chunk_, used_), then};
    status_ = fds_.empty() ? transport_.Write(chunks, deadline_)
                           : transport_.WriteWithFds(chunks, fds_, deadline_);
    first_ = {};
    fds_ = {};
    used_ = 0;
    return status_.ok();
  }
  const absl::Status& status() const { return status_; }

 private:
  static char* Chunk() {
    thread_local std::unique_ptr<char[]> chunk(new char[kStreamedMessageBytes]);
    return chunk.get();
  }

  Transport& transport_;
  absl::string_view first_;
  absl::Span<const int> fds_;
  const absl::Time deadline_;
  char* const chunk_;
  size_t used_ = 0;
  size_t byte_count_ = 0;
  absl::Status status_;
};

// The deadline of a transport write for a call whose deadline is `deadline`
// (see kWriteStallTimeout).
absl::Time TransportWriteDeadline(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return deadline;
  return std::max(deadline, absl::Now() + kWriteStallTimeout);
}

}  // namespace

FramedConnection::FramedConnection(std::unique_ptr<Transport> transport,
                                   size_t max_receive_message, size_t max_receive_control)
    : transport_(std::move(transport)),
      reader_(*transport_, max_receive_message, max_receive_control) {}

// Holds the write turn for a scope.
class FramedConnection::WriteTurn {
 public:
  explicit WriteTurn(FramedConnection& c) : c_(c) { c_.AcquireWriteTurn(absl::InfiniteFuture()); }
  ~WriteTurn() { c_.ReleaseWriteTurn(); }

 private:
  FramedConnection& c_;
};

bool FramedConnection::AcquireWriteTurn(absl::Time deadline) {
  internal::MutexLock lock(&turn_mu_);
  if (!turn_mu_.AwaitWithDeadline(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(turn_mu_) { return !writing_; }, deadline)) {
    return false;
  }
  writing_ = true;
  return true;
}

void FramedConnection::ReleaseWriteTurn() {
  internal::MutexLock lock(&turn_mu_);  // the unlock wakes a waiting writer
  writing_ = false;
}

absl::Status FramedConnection::Write(absl::string_view frames, absl::Time deadline) {
  WriteTurn turn(*this);
  return WriteHoldingTurn(frames, TransportWriteDeadline(deadline));
}

absl::Status FramedConnection::WriteWithin(absl::string_view frames, absl::Time deadline) {
  if (!AcquireWriteTurn(deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        transport_->description(), ": another write held the connection past the deadline"));
  }
  absl::Status status = WriteHoldingTurn(frames, deadline);
  ReleaseWriteTurn();
  return status;
}

absl::Status FramedConnection::WriteHoldingTurn(absl::string_view frames, absl::Time deadline) {
  absl::string_view chunks[] = {frames};
  absl::Status status = transport_->Write(chunks, deadline);
  if (!status.ok()) transport_->Shutdown();
  return status;
}

absl::Status FramedConnection::WriteMessage(
    std::string* frames, uint32_t stream_id, const google::protobuf::MessageLite* message,
    size_t size, absl::FunctionRef<void(std::string*)> append_after, absl::Time deadline,
    const OutgoingFds* fds) {
  const bool with_fds = message != nullptr && fds != nullptr && !fds->empty();
  // A trailer: the shared-buffer table (§13) and/or the descriptor table (§10).
  const bool with_trailer = message != nullptr && fds != nullptr && fds->has_trailer();
  if (!with_trailer && (message == nullptr || size < kStreamedMessageBytes)) {
    if (message != nullptr) AppendProtoFrame(FrameType::kMessage, stream_id, *message, size, frames);
    append_after(frames);
    return Write(*frames, deadline);
  }
  // The MESSAGE frame's header, then (streamed) its message bytes; `after`
  // holds the descriptor table, if any, and the frames that follow.
  std::string after;  // built before the lock; one allocation per large message at most
  if (with_trailer) after = fds->table;
  const size_t table_bytes = after.size();
  FrameHeader header;
  header.type = FrameType::kMessage;
  header.stream_id = stream_id;
  header.length = static_cast<uint32_t>(size + table_bytes);
  header.fd_count = with_fds ? static_cast<uint8_t>(fds->fds.size()) : 0;
  header.flags = with_trailer ? fds->flags : 0;
  // With descriptors, the MESSAGE starts a transport write of its own: they
  // travel with its first byte (PROTOCOL.md §10), not with the frames before.
  const size_t prefix = with_fds ? frames->size() : 0;
  size_t at = frames->size();
  frames->resize(at + kFrameHeaderSize);
  EncodeFrameHeader(header, &(*frames)[at]);
  const absl::string_view all(*frames);
  absl::Span<const int> fd_span;
  if (with_fds) fd_span = absl::MakeConstSpan(fds->fds.data(), fds->fds.size());

  if (with_trailer && size < kStreamedMessageBytes) {
    // Small: header, message and trailer in one string, sent with the fds.
    frames->resize(at + kFrameHeaderSize + size);
    message->SerializeWithCachedSizesToArray(
        reinterpret_cast<uint8_t*>(&(*frames)[at + kFrameHeaderSize]));
    frames->append(after);
    append_after(frames);
    WriteTurn turn(*this);
    deadline = TransportWriteDeadline(deadline);
    absl::Status status;
    if (prefix > 0) {
      absl::string_view chunks[] = {absl::string_view(*frames).substr(0, prefix)};
      status = transport_->Write(chunks, deadline);
    }
    if (status.ok()) {
      absl::string_view chunks[] = {absl::string_view(*frames).substr(prefix)};
      status = transport_->WriteWithFds(chunks, fd_span, deadline);
    }
    if (!status.ok()) transport_->Shutdown();
    return status;
  }
  append_after(&after);

  WriteTurn turn(*this);
  deadline = TransportWriteDeadline(deadline);
  absl::Status status;
  if (prefix > 0) {
    absl::string_view chunks[] = {all.substr(0, prefix)};
    status = transport_->Write(chunks, deadline);
  }
  if (status.ok()) {
    TransportOutputStream stream(*transport_, all.substr(prefix), fd_span, deadline);
    {
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.EnableAliasing(true);
      message->SerializeWithCachedSizes(&coded);
    }  // gives back the unused end of the last chunk
    status = stream.status();
    if (status.ok() && static_cast<size_t>(stream.ByteCount()) != size) {
      // The header already promised `size` bytes: the stream cannot be repaired.
      status = absl::InternalError(absl::StrCat(
          "message changed while it was being sent (", size, " bytes expected, ",
          stream.ByteCount(), " serialized)"));
    }
    if (status.ok() && stream.Flush()) {
      absl::string_view chunks[] = {after};
      if (!after.empty()) status = transport_->Write(chunks, deadline);
    } else if (status.ok()) {
      status = stream.status();
    }
  }
  if (!status.ok()) transport_->Shutdown();
  return status;
}

absl::Status FramedConnection::WriteWithFds(absl::string_view frames, absl::Span<const int> fds,
                                            absl::Time deadline) {
  WriteTurn turn(*this);
  absl::string_view chunks[] = {frames};
  absl::Status status = transport_->WriteWithFds(chunks, fds, TransportWriteDeadline(deadline));
  if (!status.ok()) transport_->Shutdown();
  return status;
}

absl::Status FramedConnection::WriteCompressedMessage(
    std::string* frames, uint32_t stream_id, absl::string_view payload, uint8_t algorithm,
    absl::FunctionRef<void(std::string*)> append_after, absl::Time deadline) {
  AppendFrame(FrameType::kMessage, stream_id, payload, frames, algorithm & kFlagCompressionMask);
  append_after(frames);
  return Write(*frames, deadline);
}

bool CompressMessage(const google::protobuf::MessageLite& message, size_t size,
                     uint8_t algorithm, std::string* out) {
  if (algorithm == kCompressionNone || size == 0) return false;
  std::string plain(size, '\0');
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(plain.data()));
  return Compress(algorithm, plain, out);
}

absl::StatusOr<wire::Hello> FramedConnection::ExchangeHello(const wire::Hello& ours,
                                                            absl::Time deadline) {
  // Descriptors travel wherever the transport can pass them (PROTOCOL.md
  // §10), as many as `ours` accepts. A zero-byte write first: a transport
  // that negotiates lazily (the server's end of a new connection) then knows
  // what it is.
  IPCRPC_RETURN_IF_ERROR(transport_->Write({}, deadline));
  wire::Hello sent = ours;
  const uint32_t max_fds = std::min(
      ours.max_fds_per_message(),
      static_cast<uint32_t>(std::clamp<int>(transport_->max_fds_per_write(), 0,
                                            static_cast<int>(kMaxFdsPerMessage))));
  sent.set_max_fds_per_message(max_fds);
  reader_.set_max_fds_per_frame(static_cast<int>(max_fds));
  // Shared buffers need descriptors (their segments travel as fds, §13).
  sent.set_shared_buffers(ours.shared_buffers() && max_fds > 0);
  reader_.set_accept_segments(sent.shared_buffers());
  announced_shared_buffers_ = sent.shared_buffers();
  std::string out;
  AppendProtoFrame(FrameType::kHello, 0, sent, sent.ByteSizeLong(), &out);
  absl::Status written = Write(out, deadline);
  Frame frame;
  if (!written.ok()) {
    // A server that refuses this peer sends its refusal and closes at once,
    // possibly before our HELLO went out: look for it before giving up.
    if (reader_.ReadFrame(&frame, absl::Now() + absl::Milliseconds(100)).ok() &&
        frame.header.type == FrameType::kGoAway && frame.header.stream_id == 0 &&
        !frame.oversized) {
      return RefusalStatus(frame.payload, transport_->description());
    }
    return written;
  }
  IPCRPC_RETURN_IF_ERROR(reader_.ReadFrame(&frame, deadline));
  if (frame.header.type == FrameType::kGoAway && frame.header.stream_id == 0 &&
      !frame.oversized) {  // the server refuses this peer (wire/refusal.h)
    return RefusalStatus(frame.payload, transport_->description());
  }
  if (frame.header.type != FrameType::kHello || frame.header.stream_id != 0) {
    return absl::DataLossError(absl::StrCat(
        transport_->description(), ": expected HELLO as the first frame, got type ",
        static_cast<int>(frame.header.type)));
  }
  wire::Hello theirs;
  if (frame.oversized || !theirs.ParseFromString(frame.payload)) {
    return absl::DataLossError(
        absl::StrCat(transport_->description(), ": malformed HELLO frame"));
  }
  if (theirs.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        transport_->description(), ": peer speaks protocol version ",
        theirs.protocol_version(), ", this side speaks ", kProtocolVersion));
  }
  if (theirs.max_message_size() == 0) theirs.set_max_message_size(kDefaultMaxMessage);
  if (theirs.initial_stream_window() == 0) {
    theirs.set_initial_stream_window(kDefaultStreamWindow);
  }
  return theirs;
}

void MetadataToWire(const Metadata& metadata,
                    google::protobuf::RepeatedPtrField<wire::MetadataEntry>* out) {
  for (const auto& [key, value] : metadata) {
    wire::MetadataEntry* e = out->Add();
    e->set_key(key);
    e->set_value(value);
  }
}

absl::Status ValidateMetadata(const Metadata& metadata) {
  for (const auto& entry : metadata) {
    IPCRPC_RETURN_IF_ERROR(ValidateMetadataKey(entry.first));
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc::internal
