// ipcrpc: calling any method by name, with serialized messages.
//
// A GenericStub calls a method it has no generated code for: the caller names
// it by its full wire name ("/pkg.Service/Method") and passes requests and
// receives responses as ByteBuffers (runtime/byte_buffer.h). Proxies,
// gateways, command-line tools and tests use it; it is grpcpp's GenericStub
// with blocking streams. The server cannot tell a generic call from a typed
// one, and the call kind is the caller's choice: calling a method with the
// wrong kind fails the way it would in gRPC (e.g. INTERNAL when a unary call
// gets two responses).
//
// Thread-safety: a GenericStub is thread-safe (it only holds the channel);
// the readers and writers it returns follow runtime/sync_stream.h.
// Lifetime: the ClientContext of a call must outlive the call (for streams:
// until Finish() returned); `method` is only read while the call starts.
//
// Example:
//   ipcrpc::GenericStub stub(channel);
//   ipcrpc::ClientContext ctx;
//   ipcrpc::ByteBuffer request(hello.SerializeAsString()), response;
//   absl::Status status =
//       stub.UnaryCall(&ctx, "/demo.Greeter/SayHello", request, &response);
//
//   ipcrpc::ClientContext stream_ctx;
//   auto stream = stub.BidiStreamingCall(&stream_ctx, "/demo.Chat/Talk");
//   stream->Write(request);
//   stream->WritesDone();
//   while (stream->Read(&response)) Use(response);
//   status = stream->Finish();

#ifndef IPCRPC_RUNTIME_GENERIC_STUB_H_
#define IPCRPC_RUNTIME_GENERIC_STUB_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "runtime/byte_buffer.h"
#include "runtime/channel.h"
#include "runtime/client_context.h"
#include "runtime/sync_stream.h"

namespace ipcrpc {

using GenericClientReader = ClientReader<ByteBuffer>;
using GenericClientWriter = ClientWriter<ByteBuffer>;
using GenericClientReaderWriter = ClientReaderWriter<ByteBuffer, ByteBuffer>;

class GenericStub {
 public:
  explicit GenericStub(std::shared_ptr<Channel> channel) : channel_(std::move(channel)) {}

  // One request, one response; blocks until the call is over.
  absl::Status UnaryCall(ClientContext* context, absl::string_view method,
                         const ByteBuffer& request, ByteBuffer* response);

  // One request, one response; returns at once. `on_done` runs exactly once
  // with the final status, on an ipcrpc thread (keep it short). `context`
  // and `response` must stay alive until then; `request` only until this
  // returns.
  void UnaryCall(ClientContext* context, absl::string_view method, const ByteBuffer& request,
                 ByteBuffer* response, std::function<void(absl::Status)> on_done);

  // One request, a stream of responses.
  std::unique_ptr<GenericClientReader> ServerStreamingCall(ClientContext* context,
                                                           absl::string_view method,
                                                           const ByteBuffer& request);

  // A stream of requests, one response (in *response once Finish() is OK;
  // it must stay alive until then).
  std::unique_ptr<GenericClientWriter> ClientStreamingCall(ClientContext* context,
                                                           absl::string_view method,
                                                           ByteBuffer* response);

  // Streams both ways (any kind of method can be called this way: a unary
  // method takes one Write and WritesDone, then one Read).
  std::unique_ptr<GenericClientReaderWriter> BidiStreamingCall(ClientContext* context,
                                                               absl::string_view method);

  const std::shared_ptr<Channel>& channel() const { return channel_; }

 private:
  std::shared_ptr<Channel> channel_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_GENERIC_STUB_H_
