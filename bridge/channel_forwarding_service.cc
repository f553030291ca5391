#include "bridge/channel_forwarding_service.h"

#include <utility>

#include "base/sync.h"
#include "runtime/byte_buffer.h"
#include "runtime/client_context.h"
#include "runtime/server_context.h"

namespace ipcrpc {
namespace grpc_bridge {

namespace {

// Copies the remote server's initial metadata to our client once: before the
// first response, or with the trailers.
class InitialMetadataCopier {
 public:
  InitialMetadataCopier(ServerContext* context, ClientContext* out)
      : context_(context), out_(out) {}
  void CopyOnce() {
    if (copied_) return;
    copied_ = true;
    for (const auto& entry : out_->GetServerInitialMetadata()) {
      context_->AddInitialMetadata(entry.first, entry.second);
    }
  }

 private:
  ServerContext* const context_;
  ClientContext* const out_;
  bool copied_ = false;
};

// Forwards the responses of `call` to `stream` until either ends; returns the
// remote status (trailing metadata copied).
template <typename RemoteCall>
absl::Status ForwardResponses(RemoteCall& call, ServerContext* context, ClientContext* out,
                              GenericServerReaderWriter* stream) {
  InitialMetadataCopier initial(context, out);
  ByteBuffer response;
  while (call.Read(&response)) {
    initial.CopyOnce();
    if (!stream->Write(response)) {  // our client is gone
      out->TryCancel();
      break;
    }
  }
  absl::Status status = call.Finish();
  initial.CopyOnce();
  for (const auto& entry : out->GetServerTrailingMetadata()) {
    context->AddTrailingMetadata(entry.first, entry.second);
  }
  return status;
}

}  // namespace

absl::Status ChannelForwardingService::HandleCall(ServerContext* context,
                                                  GenericServerReaderWriter* stream) {
  std::unique_ptr<ClientContext> out = ClientContext::FromServerContext(*context);
  for (const auto& entry : context->client_metadata()) out->AddMetadata(entry.first, entry.second);

  // The common case: the client sent its one request and half-closed in the
  // same write (every unary and server-streaming call from an ipcrpc stub),
  // so all of it is here before the handler runs. Then this thread forwards
  // the request with the half-close and the responses back, with no second
  // thread and nothing handed between threads.
  size_t queued = 0;
  if (stream->ClientHalfClosed(&queued) && queued <= 1) {
    ByteBuffer request;
    if (queued == 1 && stream->Read(&request)) {
      std::unique_ptr<GenericClientReader> call =
          stub_.ServerStreamingCall(out.get(), context->method(), request);
      return ForwardResponses(*call, context, out.get(), stream);
    }
    std::unique_ptr<GenericClientReaderWriter> call =
        stub_.BidiStreamingCall(out.get(), context->method());
    call->WritesDone();
    return ForwardResponses(*call, context, out.get(), stream);
  }

  std::unique_ptr<GenericClientReaderWriter> call =
      stub_.BidiStreamingCall(out.get(), context->method());

  // Requests on a second thread, then the half-close.
  internal::Mutex mu;
  internal::CondVar cv;
  bool upstream_done = false;
  absl::Status upstream = workers_.Run([&] {
    ByteBuffer request;
    bool more = true;
    while (more && stream->Read(&request)) {
      more = call->Write(request);  // false: the call is over; its status says why
    }
    if (more) call->WritesDone();
    internal::MutexLock lock(&mu);
    upstream_done = true;
    cv.Signal();
  });
  if (!upstream.ok()) {
    out->TryCancel();
    call->Finish().IgnoreError();
    return upstream;
  }

  absl::Status status = ForwardResponses(*call, context, out.get(), stream);
  stream->EndReads();  // the remote call is over: no more requests to forward
  internal::MutexLock lock(&mu);
  while (!upstream_done) cv.Wait(&mu);
  return status;
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
