#include "wire/frame.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace ipcrpc::internal {
namespace {

constexpr size_t kBufferSize = 64 * 1024;
// Read buffers that readers let go (FrameReader::ReleaseBufferIfEmpty), kept
// for the next reader that needs one: a connection that waits in an event
// loop after every call takes one and gives it back each time, and a freed
// 64 KiB block would go back to the system and be faulted in again. At most
// kMaxSpareBuffers are kept (4 MiB); idle connections hold none.
constexpr size_t kMaxSpareBuffers = 64;

class SpareReadBuffers {
 public:
  std::unique_ptr<char[]> Take() {
    {
      internal::MutexLock lock(&mu_);
      if (!spares_.empty()) {
        std::unique_ptr<char[]> buffer = std::move(spares_.back());
        spares_.pop_back();
        return buffer;
      }
    }
    return std::unique_ptr<char[]>(new char[kBufferSize]);  // not zero-filled
  }
  void Give(std::unique_ptr<char[]> buffer) {
    internal::MutexLock lock(&mu_);
    if (spares_.size() < kMaxSpareBuffers) spares_.push_back(std::move(buffer));
  }

 private:
  internal::Mutex mu_;
  std::vector<std::unique_ptr<char[]>> spares_ ABSL_GUARDED_BY(mu_);
};

SpareReadBuffers& Spares() {
  static auto* spares = new SpareReadBuffers;  // never destroyed: used at exit too
  return *spares;
}

// The first piece of memory a payload gets before any of its bytes arrive
// (it doubles from there with what arrives): a header alone costs no more.
constexpr size_t kFirstPayloadChunk = 16 * 1024;

void PutU16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>(v >> 8);
}
void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint16_t GetU16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}

}  // namespace

void EncodeFrameHeader(const FrameHeader& h, char* out) {
  out[0] = static_cast<char>(kMagic0);
  out[1] = static_cast<char>(kMagic1);
  out[2] = static_cast<char>(kProtocolVersion);
  out[3] = static_cast<char>(h.type);
  PutU32(out + 4, h.stream_id);
  PutU32(out + 8, h.length);
  PutU16(out + 12, h.flags);
  out[14] = static_cast<char>(h.fd_count);
  out[15] = 0;
}

absl::StatusOr<FrameHeader> DecodeFrameHeader(const char* in) {
  const auto* u = reinterpret_cast<const unsigned char*>(in);
  if (u[0] != kMagic0 || u[1] != kMagic1) {
    return absl::DataLossError(absl::StrCat(
        "bad frame magic 0x", absl::Hex(u[0], absl::kZeroPad2),
        absl::Hex(u[1], absl::kZeroPad2),
        " (expected 0x4952): the peer does not speak ipcrpc or the stream is corrupt"));
  }
  if (u[2] != kProtocolVersion) {
    return absl::DataLossError(absl::StrCat("unsupported protocol version ", u[2],
                                            " (this side speaks ", kProtocolVersion, ")"));
  }
  FrameHeader h;
  h.type = static_cast<FrameType>(u[3]);
  h.stream_id = GetU32(in + 4);
  h.length = GetU32(in + 8);
  h.flags = GetU16(in + 12);
  h.fd_count = u[14];
  return h;
}

void AppendFrame(FrameType type, uint32_t stream_id, absl::string_view payload,
                 std::string* out, uint16_t flags) {
  size_t at = out->size();
  out->resize(at + kFrameHeaderSize);
  FrameHeader h;
  h.type = type;
  h.flags = flags;
  h.stream_id = stream_id;
  h.length = static_cast<uint32_t>(payload.size());
  EncodeFrameHeader(h, &(*out)[at]);
  out->append(payload.data(), payload.size());
}

void AppendProtoFrame(FrameType type, uint32_t stream_id,
                      const google::protobuf::MessageLite& message,
                      size_t byte_size, std::string* out, uint8_t fd_count) {
  size_t at = out->size();
  out->resize(at + kFrameHeaderSize + byte_size);
  FrameHeader h;
  h.type = type;
  h.stream_id = stream_id;
  h.length = static_cast<uint32_t>(byte_size);
  h.fd_count = fd_count;
  EncodeFrameHeader(h, &(*out)[at]);
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(&(*out)[at + kFrameHeaderSize]));
}

void AppendCreditFrame(uint32_t stream_id, uint32_t bytes, std::string* out) {
  char payload[4];
  PutU32(payload, bytes);
  AppendFrame(FrameType::kCredit, stream_id, absl::string_view(payload, 4), out);
}

bool ParseCreditPayload(absl::string_view payload, uint32_t* bytes) {
  if (payload.size() != 4) return false;
  *bytes = GetU32(payload.data());
  return true;
}

std::string& OutgoingFrameBuffer() {
  constexpr size_t kKeepBytes = 8 << 20;  // do not hold more than this per thread
  thread_local std::string buffer;
  if (buffer.capacity() > kKeepBytes) std::string().swap(buffer);
  buffer.clear();
  return buffer;
}

void FrameReader::Recycle(std::string buffer) {
  if (buffer.capacity() < kRecyclePayloadBytes) return;
  internal::MutexLock lock(&spare_mu_);
  if (spare_.capacity() < buffer.capacity()) spare_ = std::move(buffer);
}

FrameReader::FrameReader(Transport& transport, size_t max_message_payload,
                         size_t max_control_payload)
    : transport_(transport),
      max_message_payload_(max_message_payload),
      max_control_payload_(max_control_payload),
      buffer_(Spares().Take()) {}

FrameReader::~FrameReader() {
  if (buffer_ != nullptr) Spares().Give(std::move(buffer_));
}

void FrameReader::ReleaseBufferIfEmpty() {
  if (begin_ != end_ || buffer_ == nullptr) return;
  Spares().Give(std::move(buffer_));
  begin_ = end_ = 0;
}

absl::Status FrameReader::Fill(absl::Time deadline) {
  if (buffer_ == nullptr) buffer_ = Spares().Take();  // after ReleaseBufferIfEmpty()
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == kBufferSize) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  IPCRPC_ASSIGN_OR_RETURN(
      size_t n, ReadBytes(absl::MakeSpan(buffer_.get() + end_, kBufferSize - end_), deadline));
  end_ += n;
  return absl::OkStatus();
}

absl::StatusOr<size_t> FrameReader::ReadBytes(absl::Span<char> span, absl::Time deadline) {
  IPCRPC_ASSIGN_OR_RETURN(size_t n, transport_.ReadWithFdBatches(span, &pending_, deadline));
  // A batch travels with the first byte of the frame that declares it, so at
  // most two wait at once: one whose header is still incomplete, and the
  // next frame's, read in the same piece. More were never declared.
  if (pending_.size() > 2) return RejectUndeclared("more batches than frame headers");
  return n;
}

absl::Status FrameReader::RejectUndeclared(absl::string_view where) {
  size_t count = 0;
  for (FdBatch& batch : pending_) count += batch.fds.size();
  undeclared_fds_closed_ += count;
  pending_.clear();  // closes them
  return absl::DataLossError(absl::StrCat(
      transport_.description(), ": peer sent ", count,
      " file descriptors that no frame declared (", where, "); they were closed"));
}

absl::Status FrameReader::TakeDeclaredFds() {
  const FrameHeader& h = partial_.header;
  partial_.fds.clear();
  partial_.fds_lost = false;
  if (h.fd_count == 0 || headers_only_fd_count_) return absl::OkStatus();
  FdBatch batch;
  if (!pending_.empty()) {
    batch = std::move(pending_.front());
    pending_.erase(pending_.begin());
  } else {
    absl::StatusOr<FdBatch> taken = transport_.TakeFdBatch();
    if (absl::IsNotFound(taken.status())) {
      return absl::DataLossError(absl::StrCat(
          transport_.description(), ": a frame declares ", h.fd_count,
          " file descriptors that the peer did not send with it"));
    }
    IPCRPC_RETURN_IF_ERROR(taken.status());
    batch = std::move(*taken);
  }
  const bool allowed = h.type == FrameType::kMessage
                           ? h.fd_count <= max_fds_per_frame_
                           : h.type == FrameType::kSegment && accept_segments_ && h.fd_count == 1;
  if (!allowed) {
    undeclared_fds_closed_ += batch.fds.size();
    return absl::DataLossError(absl::StrCat(
        transport_.description(), ": a frame of type ", static_cast<int>(h.type), " carries ",
        h.fd_count, " file descriptors; this side accepts ", max_fds_per_frame_,
        " per MESSAGE, one per SEGMENT (if it announced shared buffers) and none on other "
        "frames; they were closed"));
  }
  if (batch.truncated) {
    // Out of descriptors here: the kernel closed what it could not install.
    // The bytes are intact; only this frame's stream fails.
    partial_.fds_lost = batch.fds.size() < h.fd_count;
    if (partial_.fds_lost) return absl::OkStatus();  // batch.fds closed here
  }
  if (batch.fds.size() != h.fd_count) {
    undeclared_fds_closed_ += batch.fds.size();
    return absl::DataLossError(absl::StrCat(
        transport_.description(), ": a frame declares ", h.fd_count,
        " file descriptors, ", batch.fds.size(), " came with it; they were closed"));
  }
  partial_.fds = std::move(batch.fds);
  return absl::OkStatus();
}

void FrameReader::GrowPayload(size_t more) {
  std::string& payload = partial_.payload;
  const size_t needed = payload_filled_ + more;  // never beyond the declared length
  if (payload.size() >= needed) return;
  // Doubling what is there (at least one buffer's worth) keeps the copies
  // amortized; capping at the declared length keeps the frame exact.
  const size_t doubled = std::max(2 * payload.size(), kFirstPayloadChunk);
  payload.resize(std::max(needed, std::min<size_t>(partial_.header.length, doubled)));
}

bool FrameReader::NextFrameBuffered() const {
  if (have_header_ || end_ - begin_ < kFrameHeaderSize) return false;
  absl::StatusOr<FrameHeader> header = DecodeFrameHeader(&buffer_[begin_]);
  if (!header.ok()) return true;        // ReadFrame fails at once
  if (header->fd_count > 0) return false;  // its descriptors may still be on their way
  return end_ - begin_ - kFrameHeaderSize >= header->length;
}

absl::Status FrameReader::ReadFrame(Frame* frame, absl::Time deadline) {
  frame->fds.clear();  // a reused Frame does not keep the last frame's descriptors open
  frame->fds_lost = false;
  while (!have_header_) {
    if (begin_ == end_ && !pending_.empty()) {
      // Every byte that came is consumed, and the frames it started took
      // their batches: these came with no frame header.
      return RejectUndeclared("between frames");
    }
    if (end_ - begin_ >= kFrameHeaderSize) {
      IPCRPC_ASSIGN_OR_RETURN(partial_.header, DecodeFrameHeader(&buffer_[begin_]));
      begin_ += kFrameHeaderSize;
      have_header_ = true;
      if (absl::Status fds = TakeDeclaredFds(); !fds.ok()) {
        have_header_ = false;  // the connection is over anyway
        return fds;
      }
      partial_.oversized =
          partial_.header.length > (partial_.header.type == FrameType::kMessage
                                        ? max_message_payload_
                                        : max_control_payload_);
      partial_.payload.clear();
      if (!partial_.oversized && partial_.header.length >= kRecyclePayloadBytes) {
        internal::MutexLock lock(&spare_mu_);
        if (spare_.capacity() >= partial_.header.length) {
          // Memory a consumed payload already holds: filling it commits
          // nothing new. Kept at its old size, so growing the payload below
          // zero-fills only what it has beyond that.
          partial_.payload = std::move(spare_);
          spare_ = std::string();
        }
      }
      // Nothing is allocated for the declared length yet: the payload grows
      // as its bytes arrive (GrowPayload).
      payload_filled_ = 0;
      break;
    }
    IPCRPC_RETURN_IF_ERROR(Fill(deadline));
  }
  const size_t length = partial_.header.length;
  while (payload_filled_ < length) {
    size_t buffered = end_ - begin_;
    if (buffered > 0) {
      size_t take = std::min(buffered, length - payload_filled_);
      if (!partial_.oversized) {
        GrowPayload(take);
        std::memcpy(&partial_.payload[payload_filled_], &buffer_[begin_], take);
      }
      begin_ += take;
      payload_filled_ += take;
      continue;
    }
    size_t remaining = length - payload_filled_;
    if (!partial_.oversized && remaining >= kBufferSize / 2) {
      // Large payload: read straight into it, skipping the buffer copy, at
      // most as many bytes as have arrived so far (or kFirstPayloadChunk).
      if (partial_.payload.size() == payload_filled_) {  // no room left: grow first
        GrowPayload(std::min(remaining, std::max(payload_filled_, kFirstPayloadChunk)));
      }
      // Never past this frame: a recycled buffer may be longer than it.
      const size_t room = std::min(partial_.payload.size() - payload_filled_, remaining);
      const size_t batches_before = pending_.size();
      IPCRPC_ASSIGN_OR_RETURN(
          size_t n, ReadBytes(absl::MakeSpan(&partial_.payload[payload_filled_], room), deadline));
      payload_filled_ += n;
      if (pending_.size() != batches_before) return RejectUndeclared("inside a payload");
    } else {
      IPCRPC_RETURN_IF_ERROR(Fill(deadline));
    }
  }
  have_header_ = false;
  if (!partial_.oversized) partial_.payload.resize(length);  // a recycled buffer may be longer
  frame->header = partial_.header;
  frame->oversized = partial_.oversized;
  frame->fds = std::move(partial_.fds);
  frame->fds_lost = partial_.fds_lost;
  partial_.fds.clear();
  // Swapped, not moved: a caller that reuses its Frame hands back the memory
  // of the payload it did not keep, so small frames stop allocating. Large
  // buffers go back through Recycle() instead of staying here.
  frame->payload.swap(partial_.payload);
  if (partial_.payload.capacity() >= kRecyclePayloadBytes) partial_.payload = std::string();
  return absl::OkStatus();
}

}  // namespace ipcrpc::internal
