#include "runtime/channel.h"

#include <algorithm>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/sync.h"
#include "runtime/internal/client_connection.h"

namespace ipcrpc {

namespace internal {
namespace {

absl::Status FinishUnary(ClientStream& stream, const MethodDescriptor& method,
                         google::protobuf::MessageLite* response) {
  bool got_response = stream.Read(response);
  absl::Status status = stream.Finish();
  if (status.ok() && !got_response) {
    return absl::InternalError(
        absl::StrCat("server finished ", method.name, " with OK but sent no response"));
  }
  return status;
}

class IpcChannel final : public Channel {
 public:
  IpcChannel(std::unique_ptr<Connector> connector, std::unique_ptr<Transport> transport,
             const ChannelOptions& options)
      : connector_(std::move(connector)),
        transport_(std::move(transport)),
        options_(options),
        target_(connector_ ? connector_->target() : transport_->description()) {}

  std::string target() const override { return target_; }

  absl::StatusOr<std::shared_ptr<SharedBufferSession>> SharedBufferSessionForAllocation()
      override {
    absl::StatusOr<std::shared_ptr<ClientConnection>> connection = GetConnection(nullptr);
    if (!connection.ok()) return connection.status();
    if ((*connection)->shared_buffers() == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the server at ", (*connection)->description(),
          " does not take shared buffers (it did not announce them in its HELLO: an older or "
          "non-C++ peer, or the feature is off)"));
    }
    return (*connection)->shared_buffers();
  }

  absl::Status UnaryCall(const MethodDescriptor& method, ClientContext* context,
                         const google::protobuf::MessageLite& request,
                         google::protobuf::MessageLite* response) override {
    absl::StatusOr<std::shared_ptr<ClientConnection>> connection = GetConnection(context);
    if (!connection.ok()) return connection.status();
    std::unique_ptr<ClientStream> stream =
        (*connection)->StartStream(method, context, &request, /*half_close=*/true);
    return FinishUnary(*stream, method, response);
  }

  void AsyncUnaryCall(const MethodDescriptor& method, ClientContext* context,
                      const google::protobuf::MessageLite& request,
                      google::protobuf::MessageLite* response,
                      std::function<void(absl::Status)> done) override {
    absl::StatusOr<std::shared_ptr<ClientConnection>> connection = GetConnection(context);
    if (!connection.ok()) return done(connection.status());
    std::unique_ptr<ClientStream> stream =
        (*connection)->StartStream(method, context, &request, /*half_close=*/true);
    (*connection)->StartAsync(std::move(stream), response, std::move(done));
  }

  std::unique_ptr<ClientCall> StartCall(const MethodDescriptor& method,
                                        ClientContext* context,
                                        const google::protobuf::MessageLite* request) override {
    absl::StatusOr<std::shared_ptr<ClientConnection>> connection = GetConnection(context);
    if (!connection.ok()) return std::make_unique<FailedClientCall>(connection.status());
    return (*connection)->StartStream(method, context, request, request != nullptr);
  }

 private:
  // The connection for a new call: the current one if it is still usable,
  // else a new one. A call with wait_for_ready keeps trying (with backoff)
  // until its deadline while the server is not there; otherwise a server
  // that is not there fails the call at once with UNAVAILABLE. When the
  // call's own deadline is what ran out, the status is DEADLINE_EXCEEDED.
  absl::StatusOr<std::shared_ptr<ClientConnection>> GetConnection(ClientContext* context) {
    const absl::Time call_deadline =
        context != nullptr ? context->deadline() : absl::InfiniteFuture();
    const bool wait_for_ready = context != nullptr && context->wait_for_ready();
    absl::Duration backoff = absl::Milliseconds(10);
    while (true) {
      absl::StatusOr<std::shared_ptr<ClientConnection>> connection = Connect(call_deadline);
      if (connection.ok()) return connection;
      const absl::Time now = absl::Now();
      if (call_deadline != absl::InfiniteFuture() && now >= call_deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "deadline exceeded while connecting to ", target_, " (",
            connection.status().message(), ")"));
      }
      absl::Status status = connection.status();
      if (absl::IsDeadlineExceeded(status)) {  // options_.connect_timeout, not the call's
        status = absl::UnavailableError(status.message());
      }
      if (!wait_for_ready || !absl::IsUnavailable(status) || connector_ == nullptr) {
        return status;
      }
      absl::SleepFor(std::min(backoff, call_deadline - now));
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }

  absl::StatusOr<std::shared_ptr<ClientConnection>> Connect(absl::Time call_deadline) {
    internal::MutexLock lock(&mu_);
    if (connection_ != nullptr && connection_->UsableForNewCall()) return connection_;
    const absl::Time deadline = std::min(absl::Now() + options_.connect_timeout, call_deadline);
    std::unique_ptr<Transport> transport;
    if (transport_ != nullptr) {
      transport = std::move(transport_);
    } else if (connector_ != nullptr) {
      absl::StatusOr<std::unique_ptr<Transport>> t = connector_->Connect(deadline);
      if (!t.ok()) return t.status();
      transport = std::move(*t);
    } else {
      return absl::UnavailableError(absl::StrCat(
          "connection ", target_, " is closed and cannot be re-established (a channel over "
          "an existing transport does not reconnect)"));
    }
    absl::StatusOr<std::shared_ptr<ClientConnection>> c =
        ClientConnection::Establish(std::move(transport), options_, deadline);
    if (!c.ok()) {
      // The server's refusal (PERMISSION_DENIED; RESOURCE_EXHAUSTED when it
      // is out of threads or over a connection limit) and a deadline keep
      // their code; any other failure to set up is the transient UNAVAILABLE.
      const bool keep = absl::IsDeadlineExceeded(c.status()) ||
                        absl::IsPermissionDenied(c.status()) ||
                        absl::IsResourceExhausted(c.status());
      return absl::Status(keep ? c.status().code() : absl::StatusCode::kUnavailable,
                          c.status().message());
    }
    connection_ = std::move(*c);
    return connection_;
  }

  const std::unique_ptr<Connector> connector_;
  internal::Mutex mu_;
  std::unique_ptr<Transport> transport_ ABSL_GUARDED_BY(mu_);  // used once
  const ChannelOptions options_;
  const std::string target_;
  std::shared_ptr<ClientConnection> connection_ ABSL_GUARDED_BY(mu_);
};

}  // namespace
}  // namespace internal

std::shared_ptr<Channel> CreateChannelFromTransport(std::unique_ptr<Transport> transport,
                                                    const ChannelOptions& options) {
  return std::make_shared<internal::IpcChannel>(nullptr, std::move(transport), options);
}

std::shared_ptr<Channel> CreateChannelFromConnector(std::unique_ptr<Connector> connector,
                                                    const ChannelOptions& options) {
  return std::make_shared<internal::IpcChannel>(std::move(connector), nullptr, options);
}

}  // namespace ipcrpc
