// ipcrpc codegen support: what a Channel that is not an ipcrpc connection
// needs from a ClientContext.
//
// A Channel implementation outside the core (the gRPC bridge's `grpc:`
// channel, bridge/grpc_channel.h) runs calls itself, so it must fill in what
// the server sent besides messages and learn when the caller cancels. Only
// such implementations use this; applications never do.
//
// Thread-safety: the metadata setters are for the call's own thread (before
// Finish returns, as an ipcrpc connection does); SetCancelHook and
// ClearCancelHook may race with ClientContext::TryCancel from any thread.
//
// Example (inside a Channel's StartCall):
//   if (!ForeignCallAccess::SetCancelHook(ctx, [call] { call->TryCancel(); })) {
//     ... the context was cancelled already: fail with CANCELLED ...
//   }
//   ...
//   *ForeignCallAccess::server_trailing_metadata(ctx) = std::move(trailers);
//   ForeignCallAccess::ClearCancelHook(ctx);   // before `call` goes away

#ifndef IPCRPC_RUNTIME_CODEGEN_FOREIGN_CALL_H_
#define IPCRPC_RUNTIME_CODEGEN_FOREIGN_CALL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "runtime/client_context.h"
#include "google/protobuf/message_lite.h"
#include "runtime/metadata.h"

namespace ipcrpc {
namespace internal {

class ForeignCallAccess {
 public:
  // Where the server's initial and trailing metadata go
  // (ClientContext::GetServerInitialMetadata / GetServerTrailingMetadata).
  static Metadata* server_initial_metadata(ClientContext* context) {
    return &context->initial_metadata_;
  }
  static Metadata* server_trailing_metadata(ClientContext* context) {
    return &context->trailing_metadata_;
  }
  // What ClientContext::transport() reports, e.g. "grpc:host:port".
  static void set_transport(ClientContext* context, std::shared_ptr<const std::string> name) {
    context->transport_ = std::move(name);
  }
  // Makes TryCancel() (also a parent call's cancellation reaching a context
  // made by FromServerContext) run `cancel`, under the context's lock: keep
  // it short and never call back into the context. false, and nothing
  // registered, if the context is already cancelled.
  static bool SetCancelHook(ClientContext* context, std::function<void()> cancel);
  // Removes the hook; after it returns the hook is not running and will not run.
  static void ClearCancelHook(ClientContext* context);
  // A foreign channel carries no file descriptors: it refuses to send a
  // message that names one (CheckNoFds, runtime/file_descriptor.h) and
  // clears the FileDescriptor fields of each message it parses, whose
  // numbers, written by a remote peer, name nothing in this process.
  static void ClearFdHandles(google::protobuf::MessageLite* message);
};

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CODEGEN_FOREIGN_CALL_H_
