// ipcrpc: serving any method, with serialized messages.
//
// A GenericService receives every call whose method no registered service
// serves (grpcpp's AsyncGenericService / CallbackGenericService, with a
// blocking stream). Register one with ServerBuilder::RegisterGenericService;
// without one, such calls fail with UNIMPLEMENTED as before. The handler gets
// the call's ServerContext (context->method() is the full wire name,
// "/pkg.Service/Method") and a bidirectional stream of ByteBuffers, so it can
// serve all four kinds: for a unary method it reads one request and writes
// one response. Its return value is the call's status.
//
// Thread-safety: HandleCall runs on the server's handler threads, possibly
// for many calls at once. Lifetime: the service must outlive the Server.
//
// Example (a byte-level echo of every method):
//   class Echo final : public ipcrpc::GenericService {
//     absl::Status HandleCall(ipcrpc::ServerContext* context,
//                             ipcrpc::GenericServerReaderWriter* stream) override {
//       ipcrpc::ByteBuffer message;
//       while (stream->Read(&message)) {
//         if (!stream->Write(message)) return absl::CancelledError("client gone");
//       }
//       return absl::OkStatus();
//     }
//   };
//   Echo echo;
//   builder.RegisterGenericService(&echo);

#ifndef IPCRPC_RUNTIME_GENERIC_SERVICE_H_
#define IPCRPC_RUNTIME_GENERIC_SERVICE_H_

#include "absl/status/status.h"
#include "runtime/byte_buffer.h"
#include "runtime/server_context.h"
#include "runtime/service.h"
#include "runtime/sync_stream.h"

namespace ipcrpc {

class ServerBuilder;

// Writes responses, reads requests.
using GenericServerReaderWriter = ServerReaderWriter<ByteBuffer, ByteBuffer>;

class GenericService {
 public:
  GenericService();
  virtual ~GenericService() = default;
  GenericService(const GenericService&) = delete;
  GenericService& operator=(const GenericService&) = delete;

  // Serves one call; see the header comment.
  virtual absl::Status HandleCall(ServerContext* context,
                                  GenericServerReaderWriter* stream) = 0;

 private:
  friend class ServerBuilder;
  // What the server core dispatches unknown methods to: a bidi-streaming
  // method (with an empty name) whose handler runs HandleCall.
  Service::RegisteredMethod method_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_GENERIC_SERVICE_H_
