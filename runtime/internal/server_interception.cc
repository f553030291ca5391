// Server interceptors: handlers wrapped so that each call runs the server's
// interceptors around the original handler (InterceptedServices).

#include <string>
#include <utility>

#include "runtime/internal/interception.h"

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
  // Interceptors see a callback call's start (POST_RECV_INITIAL_METADATA,
  // where they may refuse it), not yet its messages or final status: the
  // reactor talks to the call directly (docs/EVENT_CORE.md).
  call_.StartReactor(make, std::move(state), response);
}

class InterceptingHandler final : public MethodHandler {
 public:
  InterceptingHandler(MethodHandler* handler, RpcKind kind, const Creators& creators)
      : handler_(handler), kind_(kind), creators_(creators) {}
  bool callback() const override { return handler_->callback(); }

  void Run(ServerCall& call) override {
    ServerContext& context = call.context();
    experimental::ServerRpcInfo info(context.method(), kind_, &context);
    InterceptorList interceptors;
    for (const auto& creator : creators_) {
      if (experimental::Interceptor* i = creator->CreateServerInterceptor(&info)) {
        interceptors.emplace_back(i);
      }
    }
    if (interceptors.empty()) return handler_->Run(call);
    InterceptedServerCall intercepted(call, interceptors);
    InterceptorBatch batch;
    batch.Add(InterceptionHookPoints::POST_RECV_INITIAL_METADATA);
    batch.recv_initial_metadata = InterceptionAccess::ClientMetadata(context);
    batch.may_fail = true;
    RunInterceptors(interceptors, batch, /*reverse=*/true);
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
