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
// completion starts the second read at once and hands the call to a worker
// thread (the downstream worker). If the second read found the client
// half-closed by the time the worker starts the ipcrpc call (unary and
// server-streaming calls, nearly always), the worker sends call start,
// request and half-close in one write (GenericStub::ServerStreamingCall), so
// such a call uses one thread and wakes the ipcrpc server once. Otherwise the
// worker starts a bidi call and writes the first request; whichever of the
// worker and the second read's reaction comes second then half-closes the
// ipcrpc call or, for another request, starts a second worker that forwards
// the rest (the upstream loop), so requests and responses flow at once (a
// ping-pong bidi call never waits on itself). The worker forwards responses
// until the status, reading the next response while gRPC writes the last one.
//
// Reactor operations: StartWrite and Finish by the downstream worker,
// StartRead by whoever owns the upstream side; `ops_mu_` keeps a StartRead
// from following Finish. Reactions only record completions (under `mu_`),
// except the half-close and the upstream hand-off above.
class ForwardingGenericService::ForwardedCall final : public grpc::ServerGenericBidiReactor {
 public:
  ForwardedCall(ForwardingGenericService* service, grpc::GenericCallbackServerContext* context)
      : service_(service), method_(context->method()), context_(context) {
    Metadata metadata;
    AppendMetadata(context->client_metadata(), &metadata);
    for (auto& entry : metadata) ictx_.AddMetadata(entry.first, std::move(entry.second));
    ictx_.set_deadline(FromGrpcDeadline(context->deadline()));
    StartRead(&first_request_);  // before the reactor is bound: gRPC keeps it for then
  }

  void OnReadDone(bool ok) override {
    ReadPhase phase;
    bool abandoned = false;
    {
      internal::MutexLock lock(&mu_);
      phase = phase_;
      if (phase == ReadPhase::kUpstreamLoop) {
        read_done_ = true;
        read_ok_ = ok;
        cv_.SignalAll();
        return;
      }
      if (phase == ReadPhase::kSecond) {
        second_done_ = true;
        second_ok_ = ok;
        // The worker has not written the first request yet: it acts on this
        // (unless it never started).
        if (!first_forwarded_ && !abandoned_) return;
        abandoned = abandoned_;
      }
    }
    if (abandoned) {
      Unref();  // the upstream side's share, which the second read held
      return;
    }
    if (phase == ReadPhase::kFirst) {
      first_read_ok_ = ok;
      if (ok) {
        {
          internal::MutexLock lock(&mu_);
          phase_ = ReadPhase::kSecond;
        }
        // Early: a unary call's half-close is then known when the worker starts.
        StartNextRead();  // cannot follow Finish: only the worker finishes
      }
      absl::Status started = service_->workers_.Run([this] { Downstream(); });
      if (!started.ok()) {
        bool release_upstream = !ok;
        if (ok) {  // the second read releases the upstream share when it ends
          internal::MutexLock lock(&mu_);
          abandoned_ = true;
          release_upstream = second_done_;  // ...unless it ended already
        }
        FinishCall(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                std::string(started.message())));
        if (release_upstream) Unref();  // the upstream side's share
        Unref();                        // the downstream side's
      }
      return;
    }
    AfterSecondRead(ok);
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

  // The second read ended (`ok`: it brought a request) and the first request
  // was written to the bidi call: half-close it, or forward the rest.
  void AfterSecondRead(bool ok) {
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

  // Sends `grpc_request` on the bidi call; false if the call is over.
  bool ForwardRequest(const grpc::ByteBuffer& grpc_request, ByteBuffer* request) {
    if (!FromGrpcBuffer(grpc_request, request->mutable_data())) {
      ictx_.TryCancel();
      return false;
    }
    return stream_->Write(*request);
  }

  // The ipcrpc call's next response; false at its end.
  bool ReadResponse(ByteBuffer* response) {
    return reader_ != nullptr ? reader_->Read(response) : stream_->Read(response);
  }

  // Starts the ipcrpc call with the first request (see the class comment).
  void StartIpcrpcCall() {
    ByteBuffer request;
    if (!first_read_ok_) {  // half-closed (or gone) before any request
      stream_ = service_->stub_.BidiStreamingCall(&ictx_, method_);
      stream_->WritesDone();
      Unref();  // the upstream side is done
      return;
    }
    bool half_closed;
    {
      internal::MutexLock lock(&mu_);
      half_closed = second_done_ && !second_ok_;
    }
    if (half_closed) {
      if (!FromGrpcBuffer(first_request_, request.mutable_data())) {
        // Not forwarded: the call still starts, to end with the reason.
        stream_ = service_->stub_.BidiStreamingCall(&ictx_, method_);
        ictx_.TryCancel();
      } else {
        reader_ = service_->stub_.ServerStreamingCall(&ictx_, method_, request);
      }
      Unref();  // the upstream side is done
      return;
    }
    stream_ = service_->stub_.BidiStreamingCall(&ictx_, method_);
    const bool written = ForwardRequest(first_request_, &request);
    bool second_done, second_ok;
    {
      internal::MutexLock lock(&mu_);
      first_forwarded_ = true;
      second_done = second_done_;
      second_ok = second_ok_;
    }
    if (!written) {
      // The call is over; Finish says why. A second read still pending ends
      // with the call and then finds first_forwarded_ (its half-close is
      // harmless).
      if (second_done) Unref();
    } else if (second_done) {
      AfterSecondRead(second_ok);
    }
  }

  // The downstream worker: starts the ipcrpc call, sends the first request,
  // then ipcrpc → gRPC: responses, then the status.
  void Downstream() {
    StartIpcrpcCall();

    grpc::Status failure;  // set when the bridge itself ends the call
    bool initial_sent = false;
    bool writing = false;  // a StartWrite whose OnWriteDone has not been waited for
    ByteBuffer response;
    while (ReadResponse(&response)) {
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
      // One write at a time: the previous one must be done before the next.
      if (writing && !AwaitWrite()) break;
      write_buffer_ = ToGrpcBuffer(response.data());
      {
        internal::MutexLock lock(&mu_);
        write_done_ = false;
      }
      StartWrite(&write_buffer_);
      writing = true;  // the next response is read meanwhile
    }
    absl::Status status = reader_ != nullptr ? reader_->Finish() : stream_->Finish();
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
    // A write still in flight is fine: gRPC sends the status after it (as for
    // StartWriteLast), and OnDone waits for its OnWriteDone.
    FinishCall(failure.ok() ? ToGrpcStatus(status, trailing) : failure);
    Unref();
  }

  // Waits for the last StartWrite's completion; false (and the ipcrpc call
  // cancelled) if the gRPC client is gone.
  bool AwaitWrite() {
    bool written;
    {
      internal::MutexLock lock(&mu_);
      while (!write_done_) cv_.Wait(&mu_);
      written = write_ok_;
    }
    if (!written) ictx_.TryCancel();
    return written;
  }

  // The upstream worker, from the second request on: gRPC → ipcrpc
  // requests, then the half-close.
  void UpstreamLoop() {
    ByteBuffer request;
    while (ForwardRequest(read_buffer_, &request)) {
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
  // One of the two is set by the downstream worker before anyone else uses
  // it: reader_ for a call whose only request went with its start.
  std::unique_ptr<GenericClientReaderWriter> stream_;
  std::unique_ptr<GenericClientReader> reader_;
  grpc::ByteBuffer first_request_;  // the first read's; then the worker's
  grpc::ByteBuffer read_buffer_;    // whoever owns the upstream side
  grpc::ByteBuffer write_buffer_;   // the downstream worker
  bool first_read_ok_ = false;      // written before the downstream worker starts

  internal::Mutex ops_mu_;
  bool finished_ ABSL_GUARDED_BY(ops_mu_) = false;

  internal::Mutex mu_;
  internal::CondVar cv_;
  int refs_ ABSL_GUARDED_BY(mu_) = 3;
  ReadPhase phase_ ABSL_GUARDED_BY(mu_) = ReadPhase::kFirst;
  bool second_done_ ABSL_GUARDED_BY(mu_) = false;  // the second read ended...
  bool second_ok_ ABSL_GUARDED_BY(mu_) = false;    // ...with a request
  bool first_forwarded_ ABSL_GUARDED_BY(mu_) = false;  // written on the bidi call
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;  // no worker could be started
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
