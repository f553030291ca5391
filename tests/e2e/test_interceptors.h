// The server interceptors test_server installs with --interceptors and
// --deny_uid (see test_server.cc), kept apart from the service.
//
// TaggingInterceptor makes every effect visible to the client:
//   * adds "echo-from-interceptor: yes" to the client's metadata (Echo and
//     the generic echo return it as "initial-from-interceptor" /
//     "trailing-from-interceptor");
//   * a client metadata entry "client-tag" comes back as the trailing
//     metadata "server-saw-client-tag";
//   * initial metadata "intercepted-initial: yes";
//   * trailing metadata "intercepted-recv" / "intercepted-sent": messages
//     read and written, "intercepted-status": the status code's name.
// DenyUidInterceptor refuses every call from one uid before its handler
// runs (PERMISSION_DENIED), except the methods tests use to look inside.

#ifndef IPCRPC_TESTS_E2E_TEST_INTERCEPTORS_H_
#define IPCRPC_TESTS_E2E_TEST_INTERCEPTORS_H_

#include <sys/types.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/interceptor.h"

namespace ipcrpc::test {

using experimental::InterceptionHookPoints;

class TaggingInterceptor final : public experimental::Interceptor {
 public:
  void Intercept(experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      Metadata* client = m->GetRecvInitialMetadata();
      auto tag = client->find("client-tag");
      if (tag != client->end()) client_tag_ = tag->second;
      client->emplace("echo-from-interceptor", "yes");
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) ++received_;
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      m->GetSendInitialMetadata()->emplace("intercepted-initial", "yes");
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) ++sent_;
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Metadata* trailing = m->GetSendTrailingMetadata();
      trailing->emplace("intercepted-recv", absl::StrCat(received_.load()));
      trailing->emplace("intercepted-sent", absl::StrCat(sent_.load()));
      trailing->emplace("intercepted-status", absl::StatusCodeToString(m->GetSendStatus().code()));
      if (!client_tag_.empty()) trailing->emplace("server-saw-client-tag", client_tag_);
    }
    m->Proceed();
  }

 private:
  std::string client_tag_;
  // A streaming call's reader and writer may intercept at once.
  std::atomic<int> received_{0};
  std::atomic<int> sent_{0};
};

class TaggingInterceptorFactory final : public experimental::ServerInterceptorFactoryInterface {
 public:
  experimental::Interceptor* CreateServerInterceptor(experimental::ServerRpcInfo*) override {
    return new TaggingInterceptor();
  }
};

class DenyUidInterceptor final : public experimental::Interceptor {
 public:
  DenyUidInterceptor(experimental::ServerRpcInfo* info, uid_t denied)
      : info_(info), denied_(denied) {}
  void Intercept(experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
        info_->server_context()->peer().uid == denied_ &&
        info_->method() != "/ipcrpc.test.TestService/LastCancel" &&
        info_->method() != "/ipcrpc.test.TestService/ServerMetrics") {
      m->FailCall(absl::PermissionDeniedError(
          absl::StrCat("uid ", denied_, " may not call ", info_->method())));
    }
    m->Proceed();
  }

 private:
  experimental::ServerRpcInfo* const info_;
  const uid_t denied_;
};

class DenyUidInterceptorFactory final : public experimental::ServerInterceptorFactoryInterface {
 public:
  explicit DenyUidInterceptorFactory(uid_t denied) : denied_(denied) {}
  experimental::Interceptor* CreateServerInterceptor(experimental::ServerRpcInfo* info) override {
    return new DenyUidInterceptor(info, denied_);
  }

 private:
  const uid_t denied_;
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_TEST_INTERCEPTORS_H_
