// ipcrpc internal: the frame format every transport carries.
//
// docs/PROTOCOL.md is the specification; this header is its code. A frame is
// a 16-byte little-endian header followed by `length` payload bytes:
//
//   offset size field
//   0      2    magic      0x49 0x52 ("IR")
//   2      1    version    1
//   3      1    type       FrameType
//   4      4    stream_id  0 for connection frames, else the call's stream
//   8      4    length     payload bytes that follow
//   12     2    flags      per type (kFlagPingAck)
//   14     1    fd_count   file descriptors sent with this frame's first byte
//   15     1    reserved   0
//
// FrameReader turns the byte stream of a Transport back into frames. It is
// resumable: a read interrupted or timed out mid-frame keeps what it has, and
// the next ReadFrame call (possibly by another thread) continues. Memory
// follows the bytes that arrived, not the lengths headers declare: a frame's
// payload grows (geometrically) as its bytes come in, so one reader holds at
// most its 64 KiB buffer plus twice the bytes of the frame being assembled
// (16 KiB before any), and never more than the payload limit for that frame.

#ifndef IPCRPC_WIRE_FRAME_H_
#define IPCRPC_WIRE_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "google/protobuf/message_lite.h"
#include "transports/transport.h"

namespace ipcrpc::internal {

inline constexpr size_t kFrameHeaderSize = 16;
inline constexpr uint8_t kMagic0 = 0x49;  // 'I'
inline constexpr uint8_t kMagic1 = 0x52;  // 'R'
inline constexpr uint8_t kProtocolVersion = 1;

enum class FrameType : uint8_t {
  kHello = 1,      // payload: wire.Hello                 stream 0
  kCallStart = 2,  // payload: wire.CallStart             client → server
  kMessage = 3,    // payload: one serialized message
  kHalfClose = 4,  // empty: the sender sends no more messages on the stream
  kTrailers = 5,   // payload: wire.Trailers              server → client
  kCancel = 6,     // empty: client abandons the stream   client → server
  kCredit = 7,     // payload: u32 LE window increment in bytes
  kPing = 8,       // payload: 8 opaque bytes, echoed with kFlagPingAck
  kGoAway = 9,     // payload: wire.GoAway                stream 0
  kHeaders = 10,   // payload: wire.Headers               server → client
  // Transport negotiation, on the unix socket before HELLO (transports/upgrade.h).
  kTransportRequest = 11,  // payload: wire.TransportRequest  client → server
  kTransportOffer = 12,    // payload: wire.TransportOffer    server → client
  kTransportAck = 13,      // payload: wire.TransportAck      client → server
  // Shared buffers (PROTOCOL.md §13), stream 0, only between peers that both
  // announced Hello.shared_buffers.
  kSegment = 14,        // 16 bytes (wire/shared_buffer_format.h) + one memfd    owner → peer
  kSegmentRetire = 15,  // u32 LE segment ids                                    owner → peer
  kBufferRelease = 16,  // u32 LE buffer keys, one per reference dropped         peer → owner
};

inline constexpr uint16_t kFlagPingAck = 0x1;
// MESSAGE: the payload ends with a shared-buffer table (PROTOCOL.md §13).
inline constexpr uint16_t kFlagSharedBuffers = 0x0010;

struct FrameHeader {
  FrameType type;
  uint16_t flags = 0;
  uint32_t stream_id = 0;
  uint32_t length = 0;
  uint8_t fd_count = 0;
};

// Writes the 16 header bytes to `out`.
void EncodeFrameHeader(const FrameHeader& header, char* out);

// Parses 16 header bytes. DATA_LOSS if the magic or version is wrong (the
// peer does not speak this protocol, or the stream is corrupt). Unknown frame
// types are accepted: receivers skip them.
absl::StatusOr<FrameHeader> DecodeFrameHeader(const char* in);

// Appends one whole frame (header + payload) to *out.
void AppendFrame(FrameType type, uint32_t stream_id, absl::string_view payload,
                 std::string* out, uint16_t flags = 0);

// Appends a frame whose payload is `message` serialized in place (no
// intermediate copy). `byte_size` must be message.ByteSizeLong(), computed
// by the caller (which usually needs it for a size check anyway).
// `fd_count`: descriptors the caller sends with this frame's first byte.
void AppendProtoFrame(FrameType type, uint32_t stream_id,
                      const google::protobuf::MessageLite& message,
                      size_t byte_size, std::string* out, uint8_t fd_count = 0);

// CREDIT frames: the payload is the u32 (little-endian) window increment.
void AppendCreditFrame(uint32_t stream_id, uint32_t bytes, std::string* out);
// false if `payload` is not exactly 4 bytes (a protocol violation).
bool ParseCreditPayload(absl::string_view payload, uint32_t* bytes);

// A frame as read: the header and its whole payload.
struct Frame {
  FrameHeader header;
  std::string payload;
  // true when the payload was larger than the reader's limit: it was read and
  // dropped, `payload` is empty, and the stream must fail RESOURCE_EXHAUSTED.
  bool oversized = false;
  // The header's fd_count descriptors, in the order sent (PROTOCOL.md §10).
  std::vector<ScopedFd> fds;
  // The frame declared descriptors that this process could not receive (it
  // is out of descriptors: the kernel truncated the batch). `fds` is empty;
  // the frame's stream must fail RESOURCE_EXHAUSTED. The byte stream is fine.
  bool fds_lost = false;
};

// A per-thread buffer for assembling outgoing frames, so that sending a large
// message reuses memory instead of allocating (and page-faulting) anew each
// time. Cleared on every call; valid until the calling thread's next call.
std::string& OutgoingFrameBuffer();

// Payloads at least this large are worth recycling (FrameReader::Recycle).
inline constexpr size_t kRecyclePayloadBytes = 64 * 1024;

class FrameReader {
 public:
  // Payloads larger than the limit for their frame are discarded, not
  // buffered (Frame::oversized): `max_message_payload` for MESSAGE frames,
  // `max_control_payload` for every other type (CALL_START, HEADERS, ...).
  FrameReader(Transport& transport, size_t max_message_payload, size_t max_control_payload);
  // The same limit for every frame.
  FrameReader(Transport& transport, size_t max_payload)
      : FrameReader(transport, max_payload, max_payload) {}
  ~FrameReader();  // its read buffer goes to the spares

  // Frames may declare up to `max` descriptors each (what this side announced
  // in its HELLO; 0 until then: a frame that declares any is a protocol
  // error). The reading thread only.
  void set_max_fds_per_frame(int max) { max_fds_per_frame_ = max; }
  // Whether a SEGMENT frame may carry its one descriptor (PROTOCOL.md §13:
  // this side announced Hello.shared_buffers).
  void set_accept_segments(bool accept) { accept_segments_ = accept; }
  // Codec mode, for the conformance vectors and tools that read a recorded
  // byte stream (never a live connection): fd_count is decoded and reported
  // in the header, but no descriptors are looked for or matched.
  void set_headers_only_fd_count() { headers_only_fd_count_ = true; }
  // Descriptors the peer sent that no frame declared, closed (the reading
  // thread; tests and diagnostics).
  uint64_t undeclared_fds_closed() const { return undeclared_fds_closed_; }

  // Gives a consumed payload's memory back for a later large frame (any
  // thread; keeps at most one buffer). Small buffers are simply dropped.
  void Recycle(std::string buffer);

  // Reads the next whole frame into *frame (whose old payload memory may be
  // reused for later frames: pass the same Frame each time). On error (DEADLINE_EXCEEDED, ABORTED from
  // Transport::Interrupt) a partial frame is kept for the next call;
  // UNAVAILABLE / DATA_LOSS mean the connection is over. Descriptors are
  // matched to frames as PROTOCOL.md §10 says: a frame's fds are the batch
  // that came with its first byte (or, out of band, the next batch); a batch
  // that no frame declares, a count that differs, or fds on a frame other
  // than MESSAGE are DATA_LOSS, and every descriptor involved is closed.
  absl::Status ReadFrame(Frame* frame, absl::Time deadline);

  // Whether the next ReadFrame returns without reading from the transport:
  // a whole frame (header and payload, no descriptors to wait for) is
  // already buffered, or a corrupt header that fails at once. The reading
  // thread only.
  bool NextFrameBuffered() const;

  // Whether nothing of a next frame has been read: no bytes and no
  // descriptors buffered. Only then may a reader stop reading until the
  // transport reports readiness (Transport::readiness_fd). The reading thread.
  bool Idle() const { return !have_header_ && begin_ == end_ && pending_.empty(); }

  // Gives the read buffer back if no bytes are buffered in it (the next
  // read takes one again, from the spares kept for that): a connection that
  // waits costs no buffer. The reading thread.
  void ReleaseBufferIfEmpty();

  // Memory held for the frame being assembled (tests only; the reading thread).
  size_t BufferedPayloadCapacityForTest() const { return partial_.payload.capacity(); }

 private:
  absl::Status Fill(absl::Time deadline);  // reads more bytes into buffer_
  // Reads into `span`, collecting descriptor batches into pending_.
  absl::StatusOr<size_t> ReadBytes(absl::Span<char> span, absl::Time deadline);
  // Gives partial_ the descriptors its header declares.
  absl::Status TakeDeclaredFds();
  // Closes every pending batch: DATA_LOSS naming `where`.
  absl::Status RejectUndeclared(absl::string_view where);
  // Makes partial_.payload at least payload_filled_ + `more` bytes long.
  void GrowPayload(size_t more);

  Transport& transport_;
  const size_t max_message_payload_;
  const size_t max_control_payload_;
  // Not zero-filled: only what the transport writes into it is touched, so
  // an idle connection that only ever read small frames keeps a page or two
  // of it resident, not all kBufferSize bytes.
  std::unique_ptr<char[]> buffer_;
  size_t begin_ = 0;  // unread bytes are buffer_[begin_, end_)
  size_t end_ = 0;
  // The frame being assembled, if its header has been read.
  bool have_header_ = false;
  Frame partial_;
  size_t payload_filled_ = 0;
  // Descriptor batches that came in band and wait for their frame header.
  std::vector<FdBatch> pending_;
  int max_fds_per_frame_ = 0;
  bool accept_segments_ = false;
  bool headers_only_fd_count_ = false;
  uint64_t undeclared_fds_closed_ = 0;

  internal::Mutex spare_mu_;
  std::string spare_ ABSL_GUARDED_BY(spare_mu_);  // recycled payload memory
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_WIRE_FRAME_H_
