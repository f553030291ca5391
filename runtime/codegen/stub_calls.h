// ipcrpc codegen support: the calls generated stubs make.
//
// Each generated stub method is one line that forwards to one of these, so
// the generated code stays short and all behaviour lives in the runtime.
// They are the only way into a Channel's call methods, which are private
// (ChannelCalls is the one friend). See runtime/codegen/method_handler.h for
// what runtime/codegen/ is.

#ifndef IPCRPC_RUNTIME_CODEGEN_STUB_CALLS_H_
#define IPCRPC_RUNTIME_CODEGEN_STUB_CALLS_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "runtime/channel.h"
#include "runtime/client_context.h"
#include "runtime/method.h"
#include "runtime/sync_stream.h"

namespace ipcrpc {
namespace internal {

// The one friend of Channel: reaches its private call methods.
class ChannelCalls {
 public:
  static absl::Status Unary(Channel& channel, const MethodDescriptor& method,
                            ClientContext* context,
                            const google::protobuf::MessageLite& request,
                            google::protobuf::MessageLite* response) {
    return channel.UnaryCall(method, context, request, response);
  }
  static void AsyncUnary(Channel& channel, const MethodDescriptor& method,
                         ClientContext* context,
                         const google::protobuf::MessageLite& request,
                         google::protobuf::MessageLite* response,
                         std::function<void(absl::Status)> done) {
    channel.AsyncUnaryCall(method, context, request, response, std::move(done));
  }
  static std::unique_ptr<ClientCall> Start(Channel& channel, const MethodDescriptor& method,
                                           ClientContext* context,
                                           const google::protobuf::MessageLite* request) {
    return channel.StartCall(method, context, request);
  }
};

inline absl::Status BlockingUnaryCall(Channel& channel,
                                      const MethodDescriptor& method,
                                      ClientContext* context,
                                      const google::protobuf::MessageLite& request,
                                      google::protobuf::MessageLite* response) {
  return ChannelCalls::Unary(channel, method, context, request, response);
}

inline void AsyncUnaryCall(Channel& channel, const MethodDescriptor& method,
                           ClientContext* context,
                           const google::protobuf::MessageLite& request,
                           google::protobuf::MessageLite* response,
                           std::function<void(absl::Status)> done) {
  ChannelCalls::AsyncUnary(channel, method, context, request, response, std::move(done));
}

template <class Resp>
std::unique_ptr<ClientReader<Resp>> NewClientReader(
    Channel& channel, const MethodDescriptor& method, ClientContext* context,
    const google::protobuf::MessageLite& request) {
  return std::make_unique<ClientReader<Resp>>(
      ChannelCalls::Start(channel, method, context, &request));
}

template <class Req>
std::unique_ptr<ClientWriter<Req>> NewClientWriter(
    Channel& channel, const MethodDescriptor& method, ClientContext* context,
    google::protobuf::MessageLite* response) {
  return std::make_unique<ClientWriter<Req>>(
      ChannelCalls::Start(channel, method, context, nullptr), response);
}

template <class Req, class Resp>
std::unique_ptr<ClientReaderWriter<Req, Resp>> NewClientReaderWriter(
    Channel& channel, const MethodDescriptor& method, ClientContext* context) {
  return std::make_unique<ClientReaderWriter<Req, Resp>>(
      ChannelCalls::Start(channel, method, context, nullptr));
}

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CODEGEN_STUB_CALLS_H_
