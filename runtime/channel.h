// ipcrpc: a client's connection to one server.
//
// A Channel carries calls to the server at one address. Generated stubs take
// a std::shared_ptr<Channel>; many stubs and threads may share one channel,
// and all their calls are multiplexed over one connection. The connection is
// made on first use and made again after it breaks; a call that cannot reach
// the server fails fast with UNAVAILABLE.
//
// Thread-safety: every method is thread-safe.
// Lifetime: calls in flight keep what they need alive; destroying the last
// reference cancels nothing that is still running but closes the connection
// once the last call has finished.
//
// Example:
//   absl::StatusOr<std::shared_ptr<ipcrpc::Channel>> channel =
//       ipcrpc::CreateChannel("unix:/run/greeter.sock");   // runtime/ipcrpc.h
//   if (!channel.ok()) return channel.status();
//   demo::Greeter::Stub stub(*channel);

#ifndef IPCRPC_RUNTIME_CHANNEL_H_
#define IPCRPC_RUNTIME_CHANNEL_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message_lite.h"
#include "runtime/client_context.h"
#include "runtime/compression.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/method.h"
#include "transports/transport.h"

namespace ipcrpc {
namespace internal {
class ChannelCalls;
class SharedBufferAccess;
class SharedBufferSession;
}  // namespace internal

// Default cap on one message, each direction (the same as gRPC's).
inline constexpr size_t kDefaultMaxMessageSize = 4 << 20;
// Default caps on one call's metadata, each direction: bytes, counting each
// entry as key + value + 32 (gRPC's default header limit, counted as gRPC
// counts it), and entries.
inline constexpr size_t kDefaultMaxMetadataBytes = 8 * 1024;
inline constexpr size_t kDefaultMaxMetadataEntries = 256;

struct ChannelOptions {
  // A request larger than this fails with RESOURCE_EXHAUSTED before it is sent.
  size_t max_send_message_size = kDefaultMaxMessageSize;
  // A response larger than this fails the call with RESOURCE_EXHAUSTED.
  size_t max_receive_message_size = kDefaultMaxMessageSize;
  // How long making the connection may take (it never extends a call's
  // deadline).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Bytes the server may send on one stream before this client has read them
  // (per-stream flow-control window announced to the server).
  uint32_t stream_window_bytes = 1 << 20;
  // Metadata this client sends, and accepts in the server's initial and
  // trailing metadata: at most this many bytes (each entry counted as key +
  // value + 32) and entries. Beyond either the call fails with
  // RESOURCE_EXHAUSTED (before anything is sent, or when the server's
  // metadata arrives); the connection stays usable. Frames other than
  // MESSAGE larger than max_metadata_bytes + 16 KiB are discarded unread.
  size_t max_metadata_bytes = kDefaultMaxMetadataBytes;
  size_t max_metadata_entries = kDefaultMaxMetadataEntries;
  // Requests are compressed with this algorithm unless a call's
  // ClientContext says otherwise (runtime/compression.h) — and only when the
  // server accepts it. gRPC's ChannelArguments::SetCompressionAlgorithm.
  CompressionAlgorithm default_compression_algorithm = CompressionAlgorithm::kNone;
  // Whether this client tells servers it can decompress responses (HELLO's
  // accept_compression). false: servers never compress to it.
  bool accept_compression = true;
  // Shared buffers (runtime/shared_buffer.h): whether this side takes part
  // (HELLO's shared_buffers; false: peers never send it any, and allocation
  // fails FAILED_PRECONDITION), the most bytes of segments this side's pool
  // holds per connection (allocation beyond fails RESOURCE_EXHAUSTED), and the
  // size of its smallest segment (an arena that small buffers share).
  bool shared_buffers = true;
  uint64_t shared_buffer_pool_bytes = uint64_t{2} << 30;
  uint64_t shared_buffer_arena_bytes = uint64_t{64} << 20;
  // The most file descriptors this client accepts with one response message
  // (HELLO's max_fds_per_message, runtime/file_descriptor.h); capped at 253
  // and at what the transport can pass. 0: servers never send it one (a
  // handler's response that names one fails FAILED_PRECONDITION).
  uint32_t max_fds_per_message = 253;
};

class Channel {
 public:
  virtual ~Channel() = default;

  // A human-readable name of the server ("unix:/run/greeter.sock").
  virtual std::string target() const = 0;

  // Calls are made through generated stubs, which reach the methods below
  // through runtime/codegen/stub_calls.h. An implementation (a test fake, a
  // bridge) overrides them.
 private:
  friend class internal::ChannelCalls;
  friend class internal::SharedBufferAccess;
  // The shared-buffer pool of the connection new calls use, connecting if
  // needed (runtime/shared_buffer.h, AllocateSharedBuffer). A channel that
  // has none (a test fake, the gRPC bridge) refuses.
  virtual absl::StatusOr<std::shared_ptr<internal::SharedBufferSession>>
  SharedBufferSessionForAllocation() {
    return absl::FailedPreconditionError(
        "shared buffers need an ipcrpc connection; channel " + target() + " has none");
  }

  // Runs a unary call to completion.
  virtual absl::Status UnaryCall(const MethodDescriptor& method,
                                 ClientContext* context,
                                 const google::protobuf::MessageLite& request,
                                 google::protobuf::MessageLite* response) = 0;

  // Starts a unary call and returns at once; `done` runs exactly once with
  // the final status, on an ipcrpc thread (keep it short and non-blocking).
  // `context` and `response` must stay alive until then.
  virtual void AsyncUnaryCall(const MethodDescriptor& method,
                              ClientContext* context,
                              const google::protobuf::MessageLite& request,
                              google::protobuf::MessageLite* response,
                              std::function<void(absl::Status)> done) = 0;

  // Starts a streaming call. For server-streaming methods `request` is the one
  // request (sent together with the call start and the half-close); otherwise
  // it must be null. Never null: a call that could not start fails on first use.
  virtual std::unique_ptr<internal::ClientCall> StartCall(
      const MethodDescriptor& method, ClientContext* context,
      const google::protobuf::MessageLite* request) = 0;
};

// Creates a channel over an already-connected transport, e.g. one end of a
// socketpair (see connect/spawn.h). The channel cannot reconnect: once the
// transport breaks, calls fail with UNAVAILABLE.
std::shared_ptr<Channel> CreateChannelFromTransport(
    std::unique_ptr<Transport> transport, const ChannelOptions& options = {});

// Creates a channel that connects with `connector` on first use and again after
// the connection breaks.
std::shared_ptr<Channel> CreateChannelFromConnector(
    std::unique_ptr<Connector> connector, const ChannelOptions& options = {});

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CHANNEL_H_
