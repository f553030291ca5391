#include "bridge/grpc_forwarding_service.h"

#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
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

// One forwarded call. Three parties hold it — gRPC until OnDone, the
// downstream side and the upstream side until they end — and the last one
// deletes it.
//
// The path of a request: the first read is started with the call; its
// completion hands the call to a worker thread (the downstream worker),
// which starts the ipcrpc call, writes that request and starts the second
// read, then forwards responses until the status. If the second read finds
// the client half-closed (unary and server-streaming calls), the reaction
// half-closes the ipcrpc call itself, so such a call uses one thread. If it
// brings another request, a second worker forwards the rest of the
// requests (the upstream loop), so responses and requests flow at once
// (a ping-pong bidi call never waits on itself).
//
// Reactor operations: StartWrite and Finish by the downstream worker,
// StartRead by whoever owns the upstream side; `ops_mu_` keeps a StartRead
// from following Finish. Reactions only record completions (under `mu_`),
// except the half-close above.
class ForwardingGenericService::ForwardedCall final : public grpc::ServerGenericBidiReactor {
 public:
  ForwardedCall(ForwardingGenericService* service, grpc::GenericCallbackServerContext* context)
      : service_(service), method_(context->method()), context_(context) {
    Metadata metadata;
    AppendMetadata(context->client_metadata(), &metadata);
    for (auto& entry : metadata) ictx_.AddMetadata(entry.first, std::move(entry.second));
    ictx_.set_deadline(FromGrpcDeadline(context->deadline()));
    StartRead(&read_buffer_);  // before the reactor is bound: gRPC keeps it for then
  }

  void OnReadDone(bool ok) override {
    ReadPhase phase;
    {
      internal::MutexLock lock(&mu_);
      phase = phase_;
      if (phase == ReadPhase::kUpstreamLoop) {
        read_done_ = true;
        read_ok_ = ok;
        cv_.SignalAll();
        return;
      }
    }
    if (phase == ReadPhase::kFirst) {
      first_read_ok_ = ok;
      absl::Status started = service_->workers_.Run([this] { Downstream(); });
      if (!started.ok()) {
        FinishCall(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                std::string(started.message())));
        Unref();  // the upstream side's share
        Unref();  // the downstream side's
      }
      return;
    }
    // The second read, started by the downstream worker after the first
    // request went out.
    if (!ok) {  // half-close (or the call ended; then this is harmless)
      stream_->WritesDone();
      Unref();  // the upstream side is done
      return;
    }
    {
      internal::MutexLock lock(&mu_);
      phase_ = ReadPhase::kUpstreamLoop;
    }
    absl::Status started = service_->workers_.Run([this] { UpstreamLoop(); });
    if (!started.ok()) {
      {
        internal::MutexLock lock(&mu_);
        upstream_failure_ = started;  // Downstream reports it once the call ended
      }
      ictx_.TryCancel();
      Unref();
    }
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
  enum class ReadPhase { kFirst, kSecond, kUpstreamLoop };

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

  // Starts the next read unless the call is finished; false then.
  bool StartNextRead() {
    internal::MutexLock lock(&ops_mu_);
    if (finished_) return false;
    StartRead(&read_buffer_);
    return true;
  }

  // Sends the request in read_buffer_; false if the call is over.
  bool ForwardRequest(ByteBuffer* request) {
    if (!FromGrpcBuffer(read_buffer_, request->mutable_data())) {
      ictx_.TryCancel();
      return false;
    }
    return stream_->Write(*request);
  }

  // The downstream worker: starts the ipcrpc call, sends the first request,
  // then ipcrpc → gRPC: responses, then the status.
  void Downstream() {
    stream_ = service_->stub_.BidiStreamingCall(&ictx_, method_);
    ByteBuffer request;
    if (!first_read_ok_) {  // half-closed (or gone) before any request
      stream_->WritesDone();
      Unref();
    } else if (!ForwardRequest(&request)) {
      Unref();  // the call is over; Finish below says why
    } else {
      {
        internal::MutexLock lock(&mu_);
        phase_ = ReadPhase::kSecond;
      }
      if (!StartNextRead()) Unref();
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
    {
      internal::MutexLock lock(&mu_);
      if (!upstream_failure_.ok()) status = upstream_failure_;
    }
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

  // The upstream worker, from the second request on: gRPC → ipcrpc
  // requests, then the half-close.
  void UpstreamLoop() {
    ByteBuffer request;
    while (ForwardRequest(&request)) {
      {
        internal::MutexLock lock(&mu_);
        read_done_ = false;
      }
      if (!StartNextRead()) break;
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
    }
    Unref();
  }

  ForwardingGenericService* const service_;
  const std::string method_;
  grpc::GenericCallbackServerContext* const context_;
  ClientContext ictx_;
  // Set by the downstream worker before the second read starts, so before
  // anyone else uses it.
  std::unique_ptr<GenericClientReaderWriter> stream_;
  grpc::ByteBuffer read_buffer_;   // whoever owns the upstream side
  grpc::ByteBuffer write_buffer_;  // the downstream worker
  bool first_read_ok_ = false;     // written before the downstream worker starts

  internal::Mutex ops_mu_;
  bool finished_ ABSL_GUARDED_BY(ops_mu_) = false;

  internal::Mutex mu_;
  internal::CondVar cv_;
  int refs_ ABSL_GUARDED_BY(mu_) = 3;
  ReadPhase phase_ ABSL_GUARDED_BY(mu_) = ReadPhase::kFirst;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool write_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status upstream_failure_ ABSL_GUARDED_BY(mu_);
};

ForwardingGenericService::ForwardingGenericService(std::shared_ptr<Channel> channel,
                                                   size_t max_concurrent_calls)
    : stub_(std::move(channel)),
      max_concurrent_calls_(max_concurrent_calls),
      workers_(2 * max_concurrent_calls) {}

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
  return new ForwardedCall(this, context);
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
