// ipcrpc codegen support: adapters from typed callback methods to calls.
//
// The callback counterparts of method_handler.h: generated
// `WithCallbackMethod_X` classes wrap their method in one of the four
// MakeCallback*Handler functions. The adapter reads the request of a
// single-request call, keeps the request and response objects for the
// call's life, and hands the method to ServerCall::StartReactor, which runs
// it and then drives the reactor it returns (runtime/server_callback.h).
// See method_handler.h for what runtime/codegen/ is.

#ifndef IPCRPC_RUNTIME_CODEGEN_CALLBACK_HANDLER_H_
#define IPCRPC_RUNTIME_CODEGEN_CALLBACK_HANDLER_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/codegen/method_handler.h"
#include "runtime/server_callback.h"
#include "runtime/server_context.h"

namespace ipcrpc {
namespace internal {

// The context of a call served by a callback method.
inline CallbackServerContext* CallbackContextOf(ServerCall& call) {
  // Every call's context is made as a CallbackServerContext (ServerStream).
  return static_cast<CallbackServerContext*>(&call.context());
}

template <class Req, class Resp>
class CallbackUnaryHandler final : public MethodHandler {
 public:
  using Fn = std::function<ServerUnaryReactor*(CallbackServerContext*, const Req*, Resp*)>;
  explicit CallbackUnaryHandler(Fn fn) : fn_(std::move(fn)) {}
  bool callback() const override { return true; }
  void Run(ServerCall& call) override {
    auto state = std::make_shared<std::pair<Req, Resp>>();
    absl::Status status = ReadSingleRequest(call, &state->first);
    if (!status.ok()) return call.Finish(status, nullptr);
    Resp* response = &state->second;
    call.StartReactor([&] { return fn_(CallbackContextOf(call), &state->first, response); },
                      state, response);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class CallbackServerStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<ServerWriteReactor<Resp>*(CallbackServerContext*, const Req*)>;
  explicit CallbackServerStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  bool callback() const override { return true; }
  void Run(ServerCall& call) override {
    auto request = std::make_shared<Req>();
    absl::Status status = ReadSingleRequest(call, request.get());
    if (!status.ok()) return call.Finish(status, nullptr);
    call.StartReactor([&] { return fn_(CallbackContextOf(call), request.get()); }, request,
                      nullptr);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class CallbackClientStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<ServerReadReactor<Req>*(CallbackServerContext*, Resp*)>;
  explicit CallbackClientStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  bool callback() const override { return true; }
  void Run(ServerCall& call) override {
    auto response = std::make_shared<Resp>();
    call.StartReactor([&] { return fn_(CallbackContextOf(call), response.get()); }, response,
                      response.get());
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
class CallbackBidiStreamingHandler final : public MethodHandler {
 public:
  using Fn = std::function<ServerBidiReactor<Req, Resp>*(CallbackServerContext*)>;
  explicit CallbackBidiStreamingHandler(Fn fn) : fn_(std::move(fn)) {}
  bool callback() const override { return true; }
  void Run(ServerCall& call) override {
    call.StartReactor([&] { return fn_(CallbackContextOf(call)); }, nullptr, nullptr);
  }

 private:
  Fn fn_;
};

template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeCallbackUnaryHandler(
    typename CallbackUnaryHandler<Req, Resp>::Fn fn) {
  return std::make_unique<CallbackUnaryHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeCallbackServerStreamingHandler(
    typename CallbackServerStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<CallbackServerStreamingHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeCallbackClientStreamingHandler(
    typename CallbackClientStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<CallbackClientStreamingHandler<Req, Resp>>(std::move(fn));
}
template <class Req, class Resp>
std::unique_ptr<MethodHandler> MakeCallbackBidiStreamingHandler(
    typename CallbackBidiStreamingHandler<Req, Resp>::Fn fn) {
  return std::make_unique<CallbackBidiStreamingHandler<Req, Resp>>(std::move(fn));
}

// What a callback method the application did not override returns: a
// reactor that finishes the call with `status` (UNIMPLEMENTED) and deletes
// itself after OnDone.
template <class Reactor>
Reactor* FinishedReactor(absl::Status status) {
  class Finished final : public Reactor {
   public:
    explicit Finished(absl::Status status) { this->Finish(std::move(status)); }
    void OnDone() override { delete this; }
  };
  return new Finished(std::move(status));
}

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CODEGEN_CALLBACK_HANDLER_H_
