#include "runtime/method.h"

namespace ipcrpc {

absl::string_view RpcKindName(RpcKind kind) {
  switch (kind) {
    case RpcKind::kUnary:
      return "unary";
    case RpcKind::kServerStreaming:
      return "server-streaming";
    case RpcKind::kClientStreaming:
      return "client-streaming";
    case RpcKind::kBidiStreaming:
      return "bidi-streaming";
  }
  return "unknown";
}

}  // namespace ipcrpc
