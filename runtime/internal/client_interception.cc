// Client interceptors: a Channel that runs them around another channel's
// calls (experimental::InterceptChannel), and RunInterceptors, shared with
// the server side.

#include <string>
#include <utility>

#include "runtime/channel.h"
#include "runtime/codegen/stub_calls.h"
#include "runtime/internal/interception.h"
#include "runtime/internal/shared_buffer_access.h"

namespace ipcrpc {
namespace internal {

void RunInterceptors(const InterceptorList& interceptors, InterceptorBatch& batch, bool reverse) {
  const size_t n = interceptors.size();
  for (size_t i = 0; i < n; ++i) {
    interceptors[reverse ? n - 1 - i : i]->Intercept(&batch);
    if (!batch.failure.ok()) return;
  }
}

namespace {

using Creators = std::vector<std::unique_ptr<experimental::ClientInterceptorFactoryInterface>>;

// The interceptors of one client call and what they are shown.
class ClientInterception {
 public:
  ClientInterception(const Creators& creators, const MethodDescriptor& method,
                     ClientContext* context, Channel* channel)
      : method_(method.name), info_(method_, method.kind, context, channel), context_(context) {
    for (const auto& creator : creators) {
      if (experimental::Interceptor* i = creator->CreateClientInterceptor(&info_)) {
        interceptors_.emplace_back(i);
      }
    }
  }

  bool empty() const { return interceptors_.empty(); }

  // PRE_SEND_INITIAL_METADATA (+ the request and the half-close, if they go
  // out with the call start). Not OK: an interceptor failed the call.
  absl::Status BeforeStart(const google::protobuf::MessageLite* request, bool close) {
    InterceptorBatch batch;
    batch.Add(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA);
    batch.send_initial_metadata =
        context_ != nullptr ? InterceptionAccess::SendMetadata(*context_) : &scratch_;
    if (request != nullptr) {
      batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
      batch.send_message = request;
    }
    if (close) batch.Add(InterceptionHookPoints::PRE_SEND_CLOSE);
    batch.may_fail = true;
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
    return batch.failure;
  }

  void BeforeSend(const google::protobuf::MessageLite* message, bool close) {
    InterceptorBatch batch;
    if (message != nullptr) {
      batch.Add(InterceptionHookPoints::PRE_SEND_MESSAGE);
      batch.send_message = message;
    }
    if (close) batch.Add(InterceptionHookPoints::PRE_SEND_CLOSE);
    RunInterceptors(interceptors_, batch, /*reverse=*/false);
  }

  // POST_RECV_INITIAL_METADATA (the first time), POST_RECV_MESSAGE if
  // `message`, POST_RECV_STATUS if `status`.
  void AfterReceive(google::protobuf::MessageLite* message, absl::Status* status) {
    InterceptorBatch batch;
    if (!initial_metadata_seen_) {
      initial_metadata_seen_ = true;
      batch.Add(InterceptionHookPoints::POST_RECV_INITIAL_METADATA);
      batch.recv_initial_metadata =
          context_ != nullptr ? InterceptionAccess::InitialMetadata(*context_) : &scratch_;
    }
    if (message != nullptr) {
      batch.Add(InterceptionHookPoints::POST_RECV_MESSAGE);
      batch.recv_message = message;
    }
    if (status != nullptr) {
      batch.Add(InterceptionHookPoints::POST_RECV_STATUS);
      batch.recv_status = status;
      batch.recv_trailing_metadata =
          context_ != nullptr ? InterceptionAccess::TrailingMetadata(*context_) : &scratch_;
    }
    RunInterceptors(interceptors_, batch, /*reverse=*/true);
  }

 private:
  const std::string method_;  // a generic call's name may not outlive the call's start
  experimental::ClientRpcInfo info_;
  ClientContext* const context_;
  Metadata scratch_;  // for calls without a context
  bool initial_metadata_seen_ = false;
  InterceptorList interceptors_;
};

class InterceptedCall final : public ClientCall {
 public:
  InterceptedCall(std::unique_ptr<ClientInterception> interception,
                  std::unique_ptr<ClientCall> call)
      : interception_(std::move(interception)), call_(std::move(call)) {}
  ~InterceptedCall() override {
    if (finished_) return;
    absl::Status abandoned = absl::CancelledError("call abandoned before Finish()");
    interception_->AfterReceive(nullptr, &abandoned);
  }

  absl::Status Write(const google::protobuf::MessageLite& message) override {
    interception_->BeforeSend(&message, /*close=*/false);
    return call_->Write(message);
  }
  absl::Status WritesDone() override {
    if (!closed_) {
      closed_ = true;
      interception_->BeforeSend(nullptr, /*close=*/true);
    }
    return call_->WritesDone();
  }
  bool Read(google::protobuf::MessageLite* message) override {
    if (!call_->Read(message)) return false;
    interception_->AfterReceive(message, nullptr);
    return true;
  }
  absl::Status Finish() override {
    if (finished_) return status_;
    status_ = call_->Finish();
    interception_->AfterReceive(nullptr, &status_);
    finished_ = true;
    return status_;
  }
  void Cancel() override { call_->Cancel(); }

 private:
  const std::unique_ptr<ClientInterception> interception_;
  const std::unique_ptr<ClientCall> call_;
  bool closed_ = false;    // the writer's
  bool finished_ = false;  // the reader's
  absl::Status status_;
};

class InterceptedChannel final : public Channel {
 public:
  InterceptedChannel(std::shared_ptr<Channel> channel, Creators creators)
      : channel_(std::move(channel)), creators_(std::move(creators)) {}

  std::string target() const override { return channel_->target(); }

 private:
  absl::Status UnaryCall(const MethodDescriptor& method, ClientContext* context,
                         const google::protobuf::MessageLite& request,
                         google::protobuf::MessageLite* response) override {
    ClientInterception interception(creators_, method, context, this);
    if (interception.empty()) {
      return ChannelCalls::Unary(*channel_, method, context, request, response);
    }
    absl::Status status = interception.BeforeStart(&request, /*close=*/true);
    if (status.ok()) status = ChannelCalls::Unary(*channel_, method, context, request, response);
    interception.AfterReceive(status.ok() ? response : nullptr, &status);
    return status;
  }

  void AsyncUnaryCall(const MethodDescriptor& method, ClientContext* context,
                      const google::protobuf::MessageLite& request,
                      google::protobuf::MessageLite* response,
                      std::function<void(absl::Status)> done) override {
    auto interception = std::make_shared<ClientInterception>(creators_, method, context, this);
    if (interception->empty()) {
      return ChannelCalls::AsyncUnary(*channel_, method, context, request, response,
                                      std::move(done));
    }
    absl::Status status = interception->BeforeStart(&request, /*close=*/true);
    if (!status.ok()) {
      interception->AfterReceive(nullptr, &status);
      return done(status);
    }
    ChannelCalls::AsyncUnary(
        *channel_, method, context, request, response,
        [interception, response, done = std::move(done)](absl::Status status) {
          interception->AfterReceive(status.ok() ? response : nullptr, &status);
          done(status);
        });
  }

  absl::StatusOr<std::shared_ptr<SharedBufferSession>> SharedBufferSessionForAllocation()
      override {
    return SharedBufferAccess::SessionOf(*channel_);
  }

  std::unique_ptr<ClientCall> StartCall(const MethodDescriptor& method, ClientContext* context,
                                        const google::protobuf::MessageLite* request) override {
    auto interception = std::make_unique<ClientInterception>(creators_, method, context, this);
    if (interception->empty()) return ChannelCalls::Start(*channel_, method, context, request);
    absl::Status status = interception->BeforeStart(request, /*close=*/request != nullptr);
    std::unique_ptr<ClientCall> call = status.ok()
                                           ? ChannelCalls::Start(*channel_, method, context, request)
                                           : std::make_unique<FailedClientCall>(status);
    return std::make_unique<InterceptedCall>(std::move(interception), std::move(call));
  }

  const std::shared_ptr<Channel> channel_;
  const Creators creators_;
};

}  // namespace
}  // namespace internal

namespace experimental {

std::shared_ptr<Channel> InterceptChannel(
    std::shared_ptr<Channel> channel,
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators) {
  if (creators.empty()) return channel;
  return std::make_shared<internal::InterceptedChannel>(std::move(channel), std::move(creators));
}

}  // namespace experimental
}  // namespace ipcrpc
