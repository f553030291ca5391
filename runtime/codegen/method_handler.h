// ipcrpc codegen support: adapters from typed service methods to untyped calls.
//
// runtime/codegen/ holds what generated code and the public templates are
// built on (grpcpp keeps the same kind of thing in grpcpp/impl/codegen/).
// Applications do not use it directly, and it may change between versions;
// it is not an implementation detail of the runtime either (that lives in
// runtime/internal/, which no public header includes).
//
// Generated service constructors wrap each virtual method in one of the four
// Make*Handler functions below and register it with Service::AddMethod. The
// adapter reads the request(s), runs the method, and finishes the call with
// the method's status (and, for unary and client-streaming methods, its
// response, sent in the same write as the trailers).

#ifndef IPCRPC_RUNTIME_CODEGEN_METHOD_HANDLER_H_
#define IPCRPC_RUNTIME_CODEGEN_METHOD_HANDLER_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/sync_stream.h"

namespace ipcrpc {
namespace internal {

class MethodHandler {
 public:
  virtual ~MethodHandler() = default;
  // Runs the method on `call` and finishes it (ServerCall::Finish) exactly
  // once; a callback method (callback_handler.h) starts its reactor and
  // returns, and the reactor finishes the call later.
  virtual void Run(ServerCall& call) = 0;
  // A callback method: a streaming call holds no thread, so it starts at
  // CALL_START without taking one of the connection's streaming handlers.
  virtual bool callback() const { return false; }
};

// Reads the one request of a unary or server-streaming call: exactly one
// message followed by half-close.
absl::Status ReadSingleRequest(ServerCall& call,
                               google::protobuf::MessageLite* request);

template <class Req, class Resp>
class UnaryHandler final : public MethodHandler {
 public:
  using Fn = std::function<absl::Status(ServerContext*, const Req*, Resp*)>;
  explicit UnaryHandler(Fn fn) : fn_(std::move(fn)) {}
  void Run(ServerCall& call) override {
    Req request;
    absl::Status status = ReadSingleRequest(call, &request);
    if (!status.ok()) return call.Finish(status, nullptr);
    Resp response;
    status = fn_(&call.context(), &request, &response);
    call.Finish(status, &response);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class ServerStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<absl::Status(ServerContext*, const Req*,
                                        ServerWriter<Resp>*)>;
  explicit ServerStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  void Run(ServerCall& call) override {
    Req request;
    absl::Status status = ReadSingleRequest(call, &request);
    if (!status.ok()) return call.Finish(status, nullptr);
    ServerWriter<Resp> writer(&call);
    call.Finish(fn_(&call.context(), &request, &writer), nullptr);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class ClientStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<absl::Status(ServerContext*, ServerReader<Req>*,
                                        Resp*)>;
  explicit ClientStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  void Run(ServerCall& call) override {
    ServerReader<Req> reader(&call);
    Resp response;
    absl::Status status = fn_(&call.context(), &reader, &response);
    call.Finish(status, &response);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class BidiStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<absl::Status(ServerContext*,
                                        ServerReaderWriter<Resp, Req>*)>;
  explicit BidiStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  void Run(ServerCall& call) override {
    ServerReaderWriter<Resp, Req> stream(&call);
    call.Finish(fn_(&call.context(), &stream), nullptr);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeUnaryHandler(
    typename UnaryHandler<Req, Resp>::Fn fn) {
  return std::make_unique<UnaryHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeServerStreamingHandler(
    typename ServerStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<ServerStreamingHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeClientStreamingHandler(
    typename ClientStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<ClientStreamingHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeBidiStreamingHandler(
    typename BidiStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<BidiStreamingHandler<Req, Resp>>(std::move(fn));
}

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CODEGEN_METHOD_HANDLER_H_
