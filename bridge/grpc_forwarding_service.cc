#include "bridge/grpc_forwarding_service.h"

#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/thread.h"
#include "bridge/grpc_mapping.h"
#include "runtime/byte_buffer.h"
#include "runtime/client_context.h"

namespace ipcrpc {
namespace grpc_bridge {
namespace {

// A call refused before anything was forwarded.
class RefusedCall final : public grpc::ServerGenericBidiReactor {
 public:
  explicit RefusedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One forwarded call. Three parties hold it — gRPC until OnDone, and the
// downstream and upstream threads until they end — and the last one deletes
// it. Reactor operations are started by the two threads only: StartWrite and
// Finish by the downstream thread, StartRead by the upstream one; `ops_mu_`
// keeps a StartRead from following Finish. The reactions only record what
// completed (under `mu_`) and wake the thread waiting for it.
class ForwardingGenericService::ForwardedCall final : public grpc::ServerGenericBidiReactor {
 public:
  ForwardedCall(ForwardingGenericService* service, grpc::GenericCallbackServerContext* context)
      : service_(service), method_(context->method()) {
    Metadata metadata;
    AppendMetadata(context->client_metadata(), &metadata);
    for (auto& entry : metadata) ictx_.AddMetadata(entry.first, std::move(entry.second));
    ictx_.set_deadline(FromGrpcDeadline(context->deadline()));
    context_ = context;
  }

  // Starts the downstream thread, which starts the rest.
  void Start() {
    absl::StatusOr<std::thread> downstream = internal::StartThread([this] { Downstream(); });
    if (downstream.ok()) {
      downstream->detach();
      return;
    }
    Unref();  // the upstream thread's share: it never starts
    FinishCall(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            std::string(downstream.status().message())));
    Unref();  // the downstream thread's share
  }

  void OnReadDone(bool ok) override {
    internal::MutexLock lock(&mu_);
    read_done_ = true;
    read_ok_ = ok;
    cv_.SignalAll();
  }
  void OnWriteDone(bool ok) override {
    internal::MutexLock lock(&mu_);
    write_done_ = true;
    write_ok_ = ok;
    cv_.SignalAll();
  }
  void OnCancel() override { ictx_.TryCancel(); }
  void OnDone() override { Unref(); }

 private:
  ~ForwardedCall() override {
    internal::MutexLock lock(&service_->mu_);
    if (--service_->calls_ == 0) service_->calls_cv_.SignalAll();
  }

  void Unref() {
    bool last;
    {
      internal::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  void FinishCall(const grpc::Status& status) {
    internal::MutexLock lock(&ops_mu_);
    finished_ = true;
    Finish(status);
  }

  // ipcrpc → gRPC: responses, then the status. Also starts the call and the
  // upstream thread.
  void Downstream() {
    stream_ = service_->stub_.BidiStreamingCall(&ictx_, method_);
    absl::StatusOr<std::thread> upstream = internal::StartThread([this] { Upstream(); });
    if (upstream.ok()) {
      upstream->detach();
    } else {
      ictx_.TryCancel();
      Unref();  // the upstream thread's share
    }
    grpc::Status failure;  // set when the bridge itself ends the call
    bool initial_sent = false;
    ByteBuffer response;
    while (stream_->Read(&response)) {
      if (!initial_sent) {
        initial_sent = true;
        absl::Status mapped = AddServerInitialMetadata(ictx_.GetServerInitialMetadata(), context_);
        if (!mapped.ok()) {
          failure = grpc::Status(grpc::StatusCode::INTERNAL,
                                 absl::StrCat("ipcrpc server's initial ", mapped.message()));
          ictx_.TryCancel();
          break;
        }
      }
      write_buffer_ = ToGrpcBuffer(response.data());
      {
        internal::MutexLock lock(&mu_);
        write_done_ = false;
      }
      StartWrite(&write_buffer_);
      bool written;
      {
        internal::MutexLock lock(&mu_);
        while (!write_done_) cv_.Wait(&mu_);
        written = write_ok_;
      }
      if (!written) {  // the gRPC client is gone or cancelled
        ictx_.TryCancel();
        break;
      }
    }
    absl::Status status = stream_->Finish();
    if (!upstream.ok()) status = upstream.status();
    const Metadata& trailing = ictx_.GetServerTrailingMetadata();
    if (failure.ok() && !initial_sent) {
      absl::Status mapped = AddServerInitialMetadata(ictx_.GetServerInitialMetadata(), context_);
      if (!mapped.ok()) {
        failure = grpc::Status(grpc::StatusCode::INTERNAL,
                               absl::StrCat("ipcrpc server's initial ", mapped.message()));
      }
    }
    if (failure.ok()) {
      absl::Status mapped = AddServerTrailingMetadata(trailing, context_);
      if (!mapped.ok()) {
        failure = grpc::Status(grpc::StatusCode::INTERNAL,
                               absl::StrCat("ipcrpc server's trailing ", mapped.message()));
      }
    }
    FinishCall(failure.ok() ? ToGrpcStatus(status, trailing) : failure);
    Unref();
  }

  // gRPC → ipcrpc: requests, then the half-close.
  void Upstream() {
    ByteBuffer request;
    for (;;) {
      {
        internal::MutexLock lock(&mu_);
        read_done_ = false;
      }
      {
        internal::MutexLock lock(&ops_mu_);
        if (finished_) break;
        StartRead(&read_buffer_);
      }
      bool read;
      {
        internal::MutexLock lock(&mu_);
        while (!read_done_) cv_.Wait(&mu_);
        read = read_ok_;
      }
      if (!read) {  // half-close, or the call ended (then this is harmless)
        stream_->WritesDone();
        break;
      }
      if (!FromGrpcBuffer(read_buffer_, request.mutable_data())) {
        ictx_.TryCancel();
        break;
      }
      if (!stream_->Write(request)) break;  // the call is over; Downstream reports why
    }
    Unref();
  }

  ForwardingGenericService* const service_;
  const std::string method_;
  grpc::GenericCallbackServerContext* context_;
  ClientContext ictx_;
  std::unique_ptr<GenericClientReaderWriter> stream_;  // set before the upstream thread starts
  grpc::ByteBuffer read_buffer_;   // upstream thread
  grpc::ByteBuffer write_buffer_;  // downstream thread

  internal::Mutex ops_mu_;
  bool finished_ ABSL_GUARDED_BY(ops_mu_) = false;

  internal::Mutex mu_;
  internal::CondVar cv_;
  int refs_ ABSL_GUARDED_BY(mu_) = 3;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool write_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
};

ForwardingGenericService::ForwardingGenericService(std::shared_ptr<Channel> channel,
                                                   size_t max_concurrent_calls)
    : stub_(std::move(channel)), max_concurrent_calls_(max_concurrent_calls) {}

ForwardingGenericService::~ForwardingGenericService() {
  internal::MutexLock lock(&mu_);
  while (calls_ > 0) calls_cv_.Wait(&mu_);
}

grpc::ServerGenericBidiReactor* ForwardingGenericService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  {
    internal::MutexLock lock(&mu_);
    if (calls_ >= max_concurrent_calls_) {
      return new RefusedCall(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("ipcrpc gRPC bridge: more than ", max_concurrent_calls_,
                       " calls at once")));
    }
    ++calls_;
  }
  auto* call = new ForwardedCall(this, context);
  call->Start();
  return call;
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
