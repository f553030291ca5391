// Server interceptors: handlers wrapped so that each call runs the server's
// interceptors around the original handler (InterceptedServices).

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "runtime/internal/interception.h"
#include "runtime/codegen/callback_handler.h"
#include "runtime/server_callback.h"

namespace ipcrpc::internal {
namespace {

using Creators = InterceptedServices::Creators;

// The handler's view of a call: every operation passes the interceptors.
class InterceptedServerCall final : public ServerCall {
 public:
  InterceptedServerCall(ServerCall& call, const InterceptorList& interceptors)
      : call_(call), interceptors_(interceptors) {}

  bool Read(google::protobuf::MessageLite* message) override {
    if (!call_.Read(message)) return false;
    InterceptorBatch batch;
    batch.Add(InterceptionHookPoints::POST_RECV_MESSAGE);
    batch.recv_message = message;
    RunInterceptors(interceptors_, batch, /*reverse=*/true);
    return true;
  }
  bool AtEndOfStream() override { return call_.AtEndOfStream(); }
  bool ClientHalfClosed(size_t* queued) override { return call_.ClientHalfClosed(queued); }
  void EndReads() override { call_.EndReads(); }

  bool Write(const google::protobuf::MessageLite& message) override {
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
    batch.send_message = &message;
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
    return call_.Write(message);
  }

  bool SendInitialMetadata() override {
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    if (!batch.empty()) RunInterceptors(interceptors_, batch, /*reverse=*/false);
    return call_.SendInitialMetadata();
  }

  void Finish(const absl::Status& status,
              const google::protobuf::MessageLite* last_message) override {
    absl::Status to_send = call_.StatusToSend(status);
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    if (last_message != nullptr && to_send.ok()) {
      batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
      batch.send_message = last_message;
    }
    batch.Add(InterceptionHookPoints::PRE_SEND_STATUS);
    batch.send_status = &to_send;
    batch.send_trailing_metadata = InterceptionAccess::TrailingMetadata(call_.context());
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
    call_.Finish(to_send, to_send.ok() ? last_message : nullptr);
  }

  absl::Status StatusToSend(const absl::Status& status) override {
    return call_.StatusToSend(status);
  }
  ServerContext& context() override { return call_.context(); }
  void StartReactor(absl::FunctionRef<ServerReactor*()> make, std::shared_ptr<void> state,
                    const google::protobuf::MessageLite* response) override;

 private:
  // PRE_SEND_INITIAL_METADATA, the first time something is sent.
  void AddInitialMetadata(InterceptorBatch& batch) {
    if (initial_metadata_sent_) return;
    initial_metadata_sent_ = true;
    batch.Add(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA);
    batch.send_initial_metadata = InterceptionAccess::InitialMetadata(call_.context());
  }

  ServerCall& call_;
  const InterceptorList& interceptors_;
  bool initial_metadata_sent_ = false;  // the handler's thread only
};

void InterceptedServerCall::StartReactor(absl::FunctionRef<ServerReactor*()> make,
                                         std::shared_ptr<void> state,
                                         const google::protobuf::MessageLite* response) {
  // Not reached: a callback method's call is an InterceptedReactorCall.
  call_.StartReactor(make, std::move(state), response);
}

// A callback method's view of a call: every operation of its reactor passes
// the interceptors on its way to the call, and every read passes them before
// the reactor's OnReadDone (this object stands between the call and the
// application's reactor, as the reactor the call drives). The method's own
// single-request read and an early Finish go through an
// InterceptedServerCall, as for a synchronous method. Owned (shared) by the
// call's state until OnDone, with the interceptors.
class InterceptedReactorCall final : public ServerCall,
                                     public ServerReactorCall,
                                     public ServerReactor,
                                     public std::enable_shared_from_this<InterceptedReactorCall> {
 public:
  InterceptedReactorCall(ServerCall& call, std::unique_ptr<experimental::ServerRpcInfo> info,
                         InterceptorList interceptors)
      : inner_(call),
        info_(std::move(info)),
        interceptors_(std::move(interceptors)),
        before_start_(call, interceptors_) {}

  // ServerCall, before the reactor exists.
  bool Read(google::protobuf::MessageLite* message) override { return before_start_.Read(message); }
  bool AtEndOfStream() override { return before_start_.AtEndOfStream(); }
  void EndReads() override { before_start_.EndReads(); }
  bool Write(const google::protobuf::MessageLite& message) override {
    return before_start_.Write(message);
  }
  bool SendInitialMetadata() override { return before_start_.SendInitialMetadata(); }
  void Finish(const absl::Status& status,
              const google::protobuf::MessageLite* last_message) override {
    before_start_.Finish(status, last_message);
  }
  ServerContext& context() override { return inner_.context(); }
  absl::Status StatusToSend(const absl::Status& status) override {
    return inner_.StatusToSend(status);
  }
  void StartReactor(absl::FunctionRef<ServerReactor*()> make, std::shared_ptr<void> state,
                    const google::protobuf::MessageLite* response) override {
    response_ = response;
    // The context's DefaultReactor() binds to this, not to the call.
    ReactorAccess::SetReactorCallIfUnset(*CallbackContextOf(inner_), this);
    auto kept = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(
        std::move(state), shared_from_this());
    inner_.StartReactor(
        [&]() -> ServerReactor* {
          // This stands for the application's reactor from now on (which
          // may Finish inside the method): bound to the call first.
          ReactorAccess::BindIfUnbound(this, ScopedReactorBinding::Current());
          {
            ScopedReactorBinding binding(static_cast<ServerReactorCall*>(this));
            user_ = make();
          }
          if (user_ == nullptr) return nullptr;
          ReactorAccess::BindIfUnbound(user_, this);
          return this;
        },
        std::move(kept), response);
  }

  // ServerReactorCall: the application's reactor's operations.
  void StartSendInitialMetadata() override {
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    if (!batch.empty()) RunInterceptors(interceptors_, batch, /*reverse=*/false);
    call()->StartSendInitialMetadata();
  }
  void StartRead(google::protobuf::MessageLite* message) override {
    read_into_ = message;
    call()->StartRead(message);
  }
  void StartWrite(const google::protobuf::MessageLite* message) override {
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
    batch.send_message = message;
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
    call()->StartWrite(message);
  }
  void StartWriteAndFinish(const google::protobuf::MessageLite* message,
                           absl::Status status) override {
    absl::Status to_send = InterceptFinish(message, status);
    call()->StartWriteAndFinish(message, std::move(to_send));
  }
  void Finish(absl::Status status) override {
    absl::Status to_send = InterceptFinish(status.ok() ? response_ : nullptr, status);
    call()->Finish(std::move(to_send));
  }

  // ServerReactor: the call's reactions, passed on to the application's.
  void OnDone() override { user_->OnDone(); }
  void OnCancel() override { user_->OnCancel(); }

 private:
  void OnSendInitialMetadataDone(bool ok) override {
    ReactorAccess::OnSendInitialMetadataDone(user_, ok);
  }
  void OnReadDone(bool ok) override {
    google::protobuf::MessageLite* message = std::exchange(read_into_, nullptr);
    if (ok) {
      InterceptorBatch batch;
      batch.Add(InterceptionHookPoints::POST_RECV_MESSAGE);
      batch.recv_message = message;
      RunInterceptors(interceptors_, batch, /*reverse=*/true);
    }
    ReactorAccess::OnReadDone(user_, ok);
  }
  void OnWriteDone(bool ok) override { ReactorAccess::OnWriteDone(user_, ok); }

  // PRE_SEND_MESSAGE (`last_message`, if any) and PRE_SEND_STATUS; returns
  // the status to send (an interceptor may change it).
  absl::Status InterceptFinish(const google::protobuf::MessageLite* last_message,
                               const absl::Status& status) {
    absl::Status to_send = inner_.StatusToSend(status);
    InterceptorBatch batch;
    AddInitialMetadata(batch);
    if (last_message != nullptr && to_send.ok()) {
      batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
      batch.send_message = last_message;
    }
    batch.Add(InterceptionHookPoints::PRE_SEND_STATUS);
    batch.send_status = &to_send;
    batch.send_trailing_metadata = InterceptionAccess::TrailingMetadata(inner_.context());
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
    return to_send;
  }
  // PRE_SEND_INITIAL_METADATA, the first time something is sent (a write
  // and the finish may come from two threads).
  void AddInitialMetadata(InterceptorBatch& batch) {
    if (initial_metadata_sent_.exchange(true)) return;
    batch.Add(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA);
    batch.send_initial_metadata = InterceptionAccess::InitialMetadata(inner_.context());
  }

  ServerCall& inner_;
  const std::unique_ptr<experimental::ServerRpcInfo> info_;  // the interceptors may keep it
  const InterceptorList interceptors_;
  InterceptedServerCall before_start_;
  ServerReactor* user_ = nullptr;  // the application's reactor
  const google::protobuf::MessageLite* response_ = nullptr;  // sent by an OK Finish
  google::protobuf::MessageLite* read_into_ = nullptr;       // the read in progress
  std::atomic<bool> initial_metadata_sent_{false};
};

class InterceptingHandler final : public MethodHandler {
 public:
  InterceptingHandler(MethodHandler* handler, RpcKind kind, const Creators& creators)
      : handler_(handler), kind_(kind), creators_(creators) {}
  bool callback() const override { return handler_->callback(); }

  void Run(ServerCall& call) override {
    ServerContext& context = call.context();
    // Interceptors may keep the info: a callback call, which outlives Run,
    // keeps it with them.
    auto info = std::make_unique<experimental::ServerRpcInfo>(context.method(), kind_, &context);
    InterceptorList interceptors;
    for (const auto& creator : creators_) {
      if (experimental::Interceptor* i = creator->CreateServerInterceptor(info.get())) {
        interceptors.emplace_back(i);
      }
    }
    if (interceptors.empty()) return handler_->Run(call);
    InterceptorBatch batch;
    batch.Add(InterceptionHookPoints::POST_RECV_INITIAL_METADATA);
    batch.recv_initial_metadata = InterceptionAccess::ClientMetadata(context);
    batch.may_fail = true;
    RunInterceptors(interceptors, batch, /*reverse=*/true);
    if (handler_->callback()) {
      // The call outlives Run: its interceptors go with it.
      auto intercepted = std::make_shared<InterceptedReactorCall>(call, std::move(info),
                                                                   std::move(interceptors));
      if (!batch.failure.ok()) return intercepted->Finish(batch.failure, nullptr);
      return handler_->Run(*intercepted);
    }
    InterceptedServerCall intercepted(call, interceptors);
    if (!batch.failure.ok()) return intercepted.Finish(batch.failure, nullptr);
    handler_->Run(intercepted);
  }

 private:
  MethodHandler* const handler_;
  const RpcKind kind_;
  const Creators& creators_;
};

}  // namespace

class InterceptedServices::WrappedService final : public Service {
 public:
  WrappedService(const Service& service, const Creators& creators) : Service(service.name()) {
    for (const RegisteredMethod& m : service.methods()) {
      AddMethod(m.descriptor, std::make_unique<InterceptingHandler>(
                                  m.handler.get(), m.descriptor.kind, creators));
    }
  }
};

InterceptedServices::InterceptedServices(Creators creators, const std::vector<Service*>& services,
                                         const Service::RegisteredMethod* generic_method)
    : creators_(std::move(creators)) {
  for (Service* s : services) services_.push_back(std::make_unique<WrappedService>(*s, creators_));
  if (generic_method != nullptr) {
    generic_method_ = std::make_unique<Service::RegisteredMethod>();
    generic_method_->descriptor = generic_method->descriptor;
    generic_method_->handler = std::make_unique<InterceptingHandler>(
        generic_method->handler.get(), generic_method->descriptor.kind, creators_);
  }
}

InterceptedServices::~InterceptedServices() = default;

std::vector<Service*> InterceptedServices::services() const {
  std::vector<Service*> out;
  out.reserve(services_.size());
  for (const auto& s : services_) out.push_back(s.get());
  return out;
}

}  // namespace ipcrpc::internal
