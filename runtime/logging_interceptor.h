// ipcrpc: an interceptor that logs one line per call.
//
// Each finished call becomes one line: the side, the method, the peer
// process, the final status and how long the call took, e.g.
//   ipcrpc server /demo.Greeter/SayHello peer=pid:4242,uid:1000,gid:1000 OK 83us
//   ipcrpc client /demo.Greeter/SayHello peer=pid:17,uid:1000,gid:1000 DEADLINE_EXCEEDED: ... 100.2ms
// The line goes to a sink the application gives (a logger, a file); the
// default writes it to stderr. The time runs from when the interceptor was
// made (client: the call's start; server: when its handler starts) to the
// final status.
//
// Thread-safety: the sink is called concurrently from many calls.
//
// Example:
//   builder.experimental().SetInterceptorCreators(...
//       std::make_unique<ipcrpc::ServerLoggingInterceptorFactory>(
//           [](const std::string& line) { MyLog(line); }));

#ifndef IPCRPC_RUNTIME_LOGGING_INTERCEPTOR_H_
#define IPCRPC_RUNTIME_LOGGING_INTERCEPTOR_H_

#include <functional>
#include <string>

#include "runtime/interceptor.h"

namespace ipcrpc {

using LogSink = std::function<void(const std::string& line)>;

class ClientLoggingInterceptorFactory final
    : public experimental::ClientInterceptorFactoryInterface {
 public:
  // `sink` null: stderr.
  explicit ClientLoggingInterceptorFactory(LogSink sink = nullptr);
  experimental::Interceptor* CreateClientInterceptor(experimental::ClientRpcInfo* info) override;

 private:
  const LogSink sink_;
};

class ServerLoggingInterceptorFactory final
    : public experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerLoggingInterceptorFactory(LogSink sink = nullptr);
  experimental::Interceptor* CreateServerInterceptor(experimental::ServerRpcInfo* info) override;

 private:
  const LogSink sink_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_LOGGING_INTERCEPTOR_H_
