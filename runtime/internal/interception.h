// ipcrpc internal: running interceptors (runtime/interceptor.h).
//
// InterceptorBatch is the one implementation of InterceptorBatchMethods: a
// set of hook points and pointers to what they carry, filled in by the code
// that intercepts a call and handed to each interceptor in turn
// (RunInterceptors). The client side (a Channel that wraps another,
// InterceptChannel) and the server side (services whose handlers are
// wrapped, InterceptedServices) build on it.
//
// Thread-safety: a batch belongs to the thread that runs it.

#ifndef IPCRPC_RUNTIME_INTERNAL_INTERCEPTION_H_
#define IPCRPC_RUNTIME_INTERNAL_INTERCEPTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "runtime/client_context.h"
#include "runtime/interceptor.h"
#include "runtime/metadata.h"
#include "runtime/server_context.h"
#include "runtime/service.h"

namespace ipcrpc::internal {

using experimental::InterceptionHookPoints;
using InterceptorList = std::vector<std::unique_ptr<experimental::Interceptor>>;

class InterceptorBatch final : public experimental::InterceptorBatchMethods {
 public:
  void Add(InterceptionHookPoints point) { hooks_ |= Bit(point); }
  bool empty() const { return hooks_ == 0; }

  bool QueryInterceptionHookPoint(InterceptionHookPoints point) override {
    return (hooks_ & Bit(point)) != 0;
  }
  void Proceed() override {}
  const google::protobuf::MessageLite* GetSendMessage() override {
    return Get(InterceptionHookPoints::PRE_SEND_MESSAGE, send_message);
  }
  Metadata* GetSendInitialMetadata() override {
    return Get(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA, send_initial_metadata);
  }
  absl::Status GetSendStatus() override {
    return QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) && send_status
               ? *send_status
               : absl::OkStatus();
  }
  void ModifySendStatus(const absl::Status& status) override {
    if (QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) && send_status) {
      *send_status = status;
    }
  }
  Metadata* GetSendTrailingMetadata() override {
    return Get(InterceptionHookPoints::PRE_SEND_STATUS, send_trailing_metadata);
  }
  google::protobuf::MessageLite* GetRecvMessage() override {
    return Get(InterceptionHookPoints::POST_RECV_MESSAGE, recv_message);
  }
  Metadata* GetRecvInitialMetadata() override {
    return Get(InterceptionHookPoints::POST_RECV_INITIAL_METADATA, recv_initial_metadata);
  }
  absl::Status* GetRecvStatus() override {
    return Get(InterceptionHookPoints::POST_RECV_STATUS, recv_status);
  }
  Metadata* GetRecvTrailingMetadata() override {
    return Get(InterceptionHookPoints::POST_RECV_STATUS, recv_trailing_metadata);
  }
  void FailCall(absl::Status status) override {
    if (!may_fail) return;
    failure = status.ok() ? absl::UnknownError("an interceptor failed the call with OK")
                          : std::move(status);
  }

  // What the hook points carry (null: not in this batch).
  const google::protobuf::MessageLite* send_message = nullptr;
  Metadata* send_initial_metadata = nullptr;
  absl::Status* send_status = nullptr;
  Metadata* send_trailing_metadata = nullptr;
  google::protobuf::MessageLite* recv_message = nullptr;
  Metadata* recv_initial_metadata = nullptr;
  absl::Status* recv_status = nullptr;
  Metadata* recv_trailing_metadata = nullptr;
  // Whether FailCall applies to this batch, and what it was given.
  bool may_fail = false;
  absl::Status failure;

 private:
  static uint32_t Bit(InterceptionHookPoints point) {
    return 1u << static_cast<uint32_t>(point);
  }
  template <typename T>
  T* Get(InterceptionHookPoints point, T* value) {
    return QueryInterceptionHookPoint(point) ? value : nullptr;
  }

  uint32_t hooks_ = 0;
};

// Runs `batch` through `interceptors`: first to last, or last to first when
// `reverse` (POST_* batches). Stops after an interceptor that failed the call.
void RunInterceptors(const InterceptorList& interceptors, InterceptorBatch& batch, bool reverse);

// The contexts' metadata, mutable, for interceptors (the contexts' friend).
class InterceptionAccess {
 public:
  static Metadata* SendMetadata(ClientContext& c) { return &c.send_metadata_; }
  static Metadata* InitialMetadata(ClientContext& c) { return &c.initial_metadata_; }
  static Metadata* TrailingMetadata(ClientContext& c) { return &c.trailing_metadata_; }
  static Metadata* ClientMetadata(ServerContext& c) { return &c.client_metadata_; }
  static Metadata* InitialMetadata(ServerContext& c) { return &c.initial_metadata_; }
  static Metadata* TrailingMetadata(ServerContext& c) { return &c.trailing_metadata_; }
};

// Copies of a server's services (and generic method) whose handlers run the
// server interceptors around the original handlers. Owned by the Server; the
// originals must outlive it (as registered services do anyway).
class InterceptedServices {
 public:
  using Creators = std::vector<std::unique_ptr<experimental::ServerInterceptorFactoryInterface>>;
  InterceptedServices(Creators creators, const std::vector<Service*>& services,
                      const Service::RegisteredMethod* generic_method);
  ~InterceptedServices();

  std::vector<Service*> services() const;
  const Service::RegisteredMethod* generic_method() const { return generic_method_.get(); }

 private:
  class WrappedService;
  const Creators creators_;
  std::vector<std::unique_ptr<WrappedService>> services_;
  std::unique_ptr<Service::RegisteredMethod> generic_method_;
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_INTERCEPTION_H_
