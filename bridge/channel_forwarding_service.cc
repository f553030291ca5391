#include "bridge/channel_forwarding_service.h"

#include <utility>

#include "base/sync.h"
#include "runtime/byte_buffer.h"
#include "runtime/client_context.h"
#include "runtime/server_context.h"

namespace ipcrpc {
namespace grpc_bridge {

absl::Status ChannelForwardingService::HandleCall(ServerContext* context,
                                                  GenericServerReaderWriter* stream) {
  std::unique_ptr<ClientContext> out = ClientContext::FromServerContext(*context);
  for (const auto& entry : context->client_metadata()) out->AddMetadata(entry.first, entry.second);
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

  bool initial_sent = false;
  auto send_initial = [&] {
    if (initial_sent) return;
    initial_sent = true;
    for (const auto& entry : out->GetServerInitialMetadata()) {
      context->AddInitialMetadata(entry.first, entry.second);
    }
  };
  ByteBuffer response;
  while (call->Read(&response)) {
    send_initial();
    if (!stream->Write(response)) {  // our client is gone
      out->TryCancel();
      break;
    }
  }
  absl::Status status = call->Finish();
  stream->EndReads();  // the remote call is over: no more requests to forward
  {
    internal::MutexLock lock(&mu);
    while (!upstream_done) cv.Wait(&mu);
  }
  send_initial();
  for (const auto& entry : out->GetServerTrailingMetadata()) {
    context->AddTrailingMetadata(entry.first, entry.second);
  }
  return status;
}

}  // namespace grpc_bridge
}  // namespace ipcrpc
