#include "runtime/codegen/method_handler.h"

#include "runtime/server_context.h"

namespace ipcrpc::internal {

absl::Status ReadSingleRequest(ServerCall& call, google::protobuf::MessageLite* request) {
  if (!call.Read(request)) {
    if (call.context().IsCancelled()) return absl::CancelledError("call cancelled");
    return absl::InternalError("client sent no request message for a single-request method");
  }
  if (!call.AtEndOfStream()) {
    return absl::InternalError("client sent more than one request message for a "
                               "single-request method");
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc::internal
