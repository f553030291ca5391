// TestService served by reactors (runtime/server_callback.h), for the
// callback tests: test_server --callback registers this instead of the
// synchronous TestServiceImpl.
//
// Echo, ServerStream, ClientStream, Bidi and WaitForCancel are callback
// methods, with the behaviour test_service.proto gives them (Echo with
// delay_ms finishes from another thread after that long; WaitForCancel
// waits for OnCancel, holding no thread, with no 10 s limit); LastCancel is
// a synchronous method of the same service (a service mixing both); the
// others are not implemented.
//
// Thread-safety: as any service, called on the server's threads.

#ifndef IPCRPC_TESTS_E2E_CALLBACK_TEST_SERVICE_H_
#define IPCRPC_TESTS_E2E_CALLBACK_TEST_SERVICE_H_

#include <string>

#include "base/sync.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {

class CallbackTestService final
    : public TestService::WithCallbackMethod_Echo<TestService::WithCallbackMethod_ServerStream<
          TestService::WithCallbackMethod_ClientStream<TestService::WithCallbackMethod_Bidi<
              TestService::WithCallbackMethod_WaitForCancel<TestService::Service>>>>> {
 public:
  ServerUnaryReactor* Echo(CallbackServerContext* ctx, const Request* request,
                           Response* response) override;
  ServerWriteReactor<Response>* ServerStream(CallbackServerContext* ctx,
                                             const Request* request) override;
  ServerReadReactor<Request>* ClientStream(CallbackServerContext* ctx,
                                           Response* response) override;
  ServerBidiReactor<Request, Response>* Bidi(CallbackServerContext* ctx) override;
  ServerUnaryReactor* WaitForCancel(CallbackServerContext* ctx, const Request* request,
                                    Response* response) override;
  absl::Status LastCancel(ServerContext* ctx, const google::protobuf::Empty* request,
                          Response* response) override;

  // What WaitForCancel's reactor saw ("waiting", "cancelled", "deadline").
  void SetLastCancel(std::string what);

 private:
  internal::Mutex mu_;
  std::string last_cancel_ ABSL_GUARDED_BY(mu_) = "none";
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_CALLBACK_TEST_SERVICE_H_
