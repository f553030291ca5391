// ipcrpc: method descriptors.
//
// A MethodDescriptor names one RPC method the way it travels on the wire
// ("/package.Service/Method", the same path gRPC uses) and says which of the
// four call shapes it has. Generated code defines one constexpr table of them
// per service; the runtime only reads them.
//
// Thread-safety: plain immutable data.
//
// Example (what generated code emits):
//   constexpr ::ipcrpc::MethodDescriptor kGreeterMethods[] = {
//       {"/demo.Greeter/SayHello", ::ipcrpc::RpcKind::kUnary},
//   };

#ifndef IPCRPC_RUNTIME_METHOD_H_
#define IPCRPC_RUNTIME_METHOD_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ipcrpc {

// The four call shapes of protobuf services.
enum class RpcKind : uint8_t {
  kUnary = 0,            // one request, one response
  kServerStreaming = 1,  // one request, many responses
  kClientStreaming = 2,  // many requests, one response
  kBidiStreaming = 3,    // many requests, many responses
};

// Returns "unary", "server-streaming", "client-streaming" or "bidi-streaming".
absl::string_view RpcKindName(RpcKind kind);

struct MethodDescriptor {
  // Full wire name: "/<package>.<Service>/<Method>" ("/<Service>/<Method>"
  // when the .proto has no package).
  absl::string_view name;
  RpcKind kind;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_METHOD_H_
