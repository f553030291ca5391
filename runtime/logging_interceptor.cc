#include "runtime/logging_interceptor.h"

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ipcrpc {
namespace {

using experimental::InterceptionHookPoints;

void WriteToStderr(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

std::string FormatLine(absl::string_view side, absl::string_view method,
                       const PeerCredentials& peer, const absl::Status& status,
                       absl::Duration took) {
  // pid 0: the call never reached a connection.
  const std::string who = peer.pid == 0 ? "none"
                                        : absl::StrCat("pid:", peer.pid, ",uid:", peer.uid,
                                                       ",gid:", peer.gid);
  return absl::StrCat("ipcrpc ", side, " ", method, " peer=", who, " ", status.ToString(), " ",
                      absl::FormatDuration(took));
}

class ClientLogging final : public experimental::Interceptor {
 public:
  ClientLogging(experimental::ClientRpcInfo* info, const LogSink& sink)
      : info_(info), sink_(sink), start_(absl::Now()) {}
  void Intercept(experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      ClientContext* ctx = info_->client_context();
      sink_(FormatLine("client", info_->method(), ctx ? ctx->peer() : PeerCredentials{},
                       *methods->GetRecvStatus(), absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  experimental::ClientRpcInfo* const info_;
  const LogSink& sink_;
  const absl::Time start_;
};

class ServerLogging final : public experimental::Interceptor {
 public:
  ServerLogging(experimental::ServerRpcInfo* info, const LogSink& sink)
      : info_(info), sink_(sink), start_(absl::Now()) {}
  void Intercept(experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      sink_(FormatLine("server", info_->method(), info_->server_context()->peer(),
                       methods->GetSendStatus(), absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  experimental::ServerRpcInfo* const info_;
  const LogSink& sink_;
  const absl::Time start_;
};

}  // namespace

ClientLoggingInterceptorFactory::ClientLoggingInterceptorFactory(LogSink sink)
    : sink_(sink ? std::move(sink) : LogSink(WriteToStderr)) {}

experimental::Interceptor* ClientLoggingInterceptorFactory::CreateClientInterceptor(
    experimental::ClientRpcInfo* info) {
  return new ClientLogging(info, sink_);
}

ServerLoggingInterceptorFactory::ServerLoggingInterceptorFactory(LogSink sink)
    : sink_(sink ? std::move(sink) : LogSink(WriteToStderr)) {}

experimental::Interceptor* ServerLoggingInterceptorFactory::CreateServerInterceptor(
    experimental::ServerRpcInfo* info) {
  return new ServerLogging(info, sink_);
}

}  // namespace ipcrpc
