#include "runtime/generic_stub.h"

#include "runtime/codegen/stub_calls.h"
#include "runtime/method.h"

namespace ipcrpc {
namespace {

// The channel reads the name only while starting the call, so a descriptor
// over the caller's string is enough.
MethodDescriptor Describe(absl::string_view method, RpcKind kind) { return {method, kind}; }

}  // namespace

absl::Status GenericStub::UnaryCall(ClientContext* context, absl::string_view method,
                                    const ByteBuffer& request, ByteBuffer* response) {
  return internal::BlockingUnaryCall(*channel_, Describe(method, RpcKind::kUnary), context,
                                     request, response);
}

void GenericStub::UnaryCall(ClientContext* context, absl::string_view method,
                            const ByteBuffer& request, ByteBuffer* response,
                            std::function<void(absl::Status)> on_done) {
  internal::AsyncUnaryCall(*channel_, Describe(method, RpcKind::kUnary), context, request,
                           response, std::move(on_done));
}

std::unique_ptr<GenericClientReader> GenericStub::ServerStreamingCall(
    ClientContext* context, absl::string_view method, const ByteBuffer& request) {
  return internal::NewClientReader<ByteBuffer>(
      *channel_, Describe(method, RpcKind::kServerStreaming), context, request);
}

std::unique_ptr<GenericClientWriter> GenericStub::ClientStreamingCall(ClientContext* context,
                                                                      absl::string_view method,
                                                                      ByteBuffer* response) {
  return internal::NewClientWriter<ByteBuffer>(
      *channel_, Describe(method, RpcKind::kClientStreaming), context, response);
}

std::unique_ptr<GenericClientReaderWriter> GenericStub::BidiStreamingCall(
    ClientContext* context, absl::string_view method) {
  return internal::NewClientReaderWriter<ByteBuffer, ByteBuffer>(
      *channel_, Describe(method, RpcKind::kBidiStreaming), context);
}

}  // namespace ipcrpc
