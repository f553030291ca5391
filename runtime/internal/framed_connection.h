// ipcrpc internal: what client and server connections share.
//
// A FramedConnection owns one Transport, serializes writes of whole frame
// batches (one Transport::Write per batch: header and payload together), and
// exchanges the HELLO frames that open every connection. Reading is left to
// the owner, which decides which thread reads (see client_connection.h and
// server_connection.h).

#ifndef IPCRPC_RUNTIME_INTERNAL_FRAMED_CONNECTION_H_
#define IPCRPC_RUNTIME_INTERNAL_FRAMED_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "google/protobuf/message_lite.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/internal/fd_fields.h"
#include "runtime/metadata.h"
#include "transports/transport.h"
#include "wire/frame.h"

namespace ipcrpc::internal {

// Default per-stream window (bytes the peer may send before credit returns).
inline constexpr uint32_t kDefaultStreamWindow = 1 << 20;
inline constexpr uint32_t kDefaultMaxMessage = 4 << 20;
inline constexpr char kAgent[] = "ipcrpc-cpp/0.1";
// Messages at least this large are serialized into the transport in chunks
// of this size (FramedConnection::WriteMessage).
inline constexpr size_t kStreamedMessageBytes = 128 * 1024;
// A write, once started, is finished: a call's deadline never cuts a frame
// (that would leave the byte stream unusable and end every call on the
// connection). The transport write is given the call's deadline or this much
// time, whichever is later; a peer that has not taken the bytes by then is
// stuck, and the connection ends.
inline constexpr absl::Duration kWriteStallTimeout = absl::Seconds(10);

class FramedConnection {
 public:
  // Frames received beyond `max_receive_message` (MESSAGE) or
  // `max_receive_control` (every other type) are discarded unread
  // (FrameReader).
  FramedConnection(std::unique_ptr<Transport> transport, size_t max_receive_message,
                   size_t max_receive_control);

  Transport& transport() { return *transport_; }
  FrameReader& reader() { return reader_; }

  // Writes `frames` (one or more whole frames) in one transport write.
  // Thread-safe. `deadline` is the call's: a write that has started runs on
  // past it, up to kWriteStallTimeout (the caller's call then ends
  // DEADLINE_EXCEEDED as it waits for its reply; its connection stays up). A
  // failed write leaves the byte stream unusable, so it shuts the transport
  // down; the reader then sees the connection end.
  absl::Status Write(absl::string_view frames, absl::Time deadline);

  // As Write, but waits for a write in progress (which may be blocked on a
  // peer that stopped reading) no longer than `deadline` either: then
  // DEADLINE_EXCEEDED, nothing written, the transport untouched. For frames
  // that must not hold their sender past a deadline (GOAWAY at shutdown).
  absl::Status WriteWithin(absl::string_view frames, absl::Time deadline);

  // Writes, as one uninterrupted sequence: the whole frames already in
  // *frames, a MESSAGE frame for `stream_id` carrying `message` unless it is
  // null (its ByteSizeLong() returned `size`, so its cached sizes are valid),
  // then the whole frames `append_after` appends to the string it is given.
  // Without a message, or with a small one, everything goes out in one
  // transport write. A message of kStreamedMessageBytes or more is serialized
  // straight into the transport in chunks, through a small per-thread buffer:
  // no buffer the size of the message is filled, zeroed or kept. *frames is
  // clobbered either way. Thread-safe; failures as for Write().
  // `fds`, if given and not empty, go with the MESSAGE (PROTOCOL.md §10):
  // its header declares them, its payload ends with their table, and its
  // first byte starts a transport write of its own (the frames before it
  // go in a write before). The descriptors must be open until this returns.
  absl::Status WriteMessage(std::string* frames, uint32_t stream_id,
                            const google::protobuf::MessageLite* message, size_t size,
                            absl::FunctionRef<void(std::string*)> append_after,
                            absl::Time deadline, const OutgoingFds* fds = nullptr);
  // As WriteMessage, for a message already compressed (CompressMessage):
  // one MESSAGE frame whose flags carry `algorithm`, in one transport write.
  absl::Status WriteCompressedMessage(std::string* frames, uint32_t stream_id,
                                      absl::string_view payload, uint8_t algorithm,
                                      absl::FunctionRef<void(std::string*)> append_after,
                                      absl::Time deadline);
  // Writes whole `frames` in one transport write with `fds` sent with their
  // first byte (a SEGMENT frame, PROTOCOL.md §13). Failures as for Write().
  absl::Status WriteWithFds(absl::string_view frames, absl::Span<const int> fds,
                            absl::Time deadline);
  // For WriteMessage: no frames after the message.
  static void NoFramesAfter(std::string*) {}

  // Sends our HELLO and reads the peer's (client order: send first). The
  // HELLO sent announces shared buffers only if `ours` asks for them and
  // the transport passes descriptors.
  absl::StatusOr<wire::Hello> ExchangeHello(const wire::Hello& ours,
                                            absl::Time deadline);
  // Whether the HELLO sent announced shared buffers (after ExchangeHello).
  bool announced_shared_buffers() const { return announced_shared_buffers_; }

 private:
  // One writer at a time; the turn is waited for up to a deadline (not
  // a plain lock, so that WriteWithin can give up).
  class WriteTurn;
  bool AcquireWriteTurn(absl::Time deadline);
  void ReleaseWriteTurn();
  absl::Status WriteHoldingTurn(absl::string_view frames, absl::Time deadline);

  std::unique_ptr<Transport> transport_;
  FrameReader reader_;
  bool announced_shared_buffers_ = false;  // set by ExchangeHello
  internal::Mutex turn_mu_;
  bool writing_ ABSL_GUARDED_BY(turn_mu_) = false;
};

// Serializes `message` (ByteSizeLong() returned `size`) and compresses it
// with `algorithm` into *out. false — send it uncompressed — if the
// algorithm is kCompressionNone or compressing does not make it smaller.
bool CompressMessage(const google::protobuf::MessageLite& message, size_t size,
                     uint8_t algorithm, std::string* out);

// Metadata <-> wire conversion.
void MetadataToWire(const Metadata& metadata,
                    google::protobuf::RepeatedPtrField<wire::MetadataEntry>* out);
// (Wire -> Metadata, with the receiver's limits: MetadataFromWireWithin in
// call_limits.h.)
absl::Status ValidateMetadata(const Metadata& metadata);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_FRAMED_CONNECTION_H_
