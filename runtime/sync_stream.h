// ipcrpc: blocking readers and writers for streaming calls.
//
// These are the objects a streaming stub method returns (client side) and a
// streaming handler receives (server side). They mirror gRPC's synchronous
// API: Read() returns false at the end of the stream, Write() returns false
// once the call is over, and the client's Finish() gives the final status.
//
// Thread-safety: one thread may Read while another Writes; two concurrent
// Reads (or Writes) on one object are not allowed.
// Lifetime: a client object must not outlive the ClientContext it was created
// with; server objects live only for the duration of the handler.
//
// Example (client, server-streaming):
//   ipcrpc::ClientContext ctx;
//   auto reader = stub->ListFeatures(&ctx, request);
//   Feature f;
//   while (reader->Read(&f)) Use(f);
//   absl::Status status = reader->Finish();

#ifndef IPCRPC_RUNTIME_SYNC_STREAM_H_
#define IPCRPC_RUNTIME_SYNC_STREAM_H_

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "runtime/codegen/call_interfaces.h"

namespace ipcrpc {

// Client side of a server-streaming call: reads responses of type R.
template <class R>
class ClientReader {
 public:
  explicit ClientReader(std::unique_ptr<internal::ClientCall> call)
      : call_(std::move(call)) {}

  // Blocks for the next response. false: the stream ended (call Finish()).
  bool Read(R* message) { return call_->Read(message); }

  // Waits for and returns the call's final status. Reading all responses
  // first is not required; unread ones are discarded.
  absl::Status Finish() { return call_->Finish(); }

 private:
  std::unique_ptr<internal::ClientCall> call_;
};

// Client side of a client-streaming call: writes requests of type W; the one
// response goes to the object given to the stub, valid once Finish() is OK.
template <class W>
class ClientWriter {
 public:
  explicit ClientWriter(std::unique_ptr<internal::ClientCall> call,
                        google::protobuf::MessageLite* response)
      : call_(std::move(call)), response_(response) {}

  // Sends one request; blocks while the server is not keeping up (flow
  // control). false: the call is over (call Finish()).
  bool Write(const W& message) { return call_->Write(message).ok(); }

  // Tells the server no more requests follow.
  bool WritesDone() { return call_->WritesDone().ok(); }

  // Half-closes if needed, waits for the response and the final status.
  absl::Status Finish() {
    call_->WritesDone().IgnoreError();
    bool got_response = call_->Read(response_);
    absl::Status status = call_->Finish();
    if (status.ok() && !got_response) {
      return absl::InternalError(
          "server finished a client-streaming call without a response");
    }
    return status;
  }

 private:
  std::unique_ptr<internal::ClientCall> call_;
  google::protobuf::MessageLite* response_;
};

// Client side of a bidirectional call: writes W, reads R.
template <class W, class R>
class ClientReaderWriter {
 public:
  explicit ClientReaderWriter(std::unique_ptr<internal::ClientCall> call)
      : call_(std::move(call)) {}

  bool Write(const W& message) { return call_->Write(message).ok(); }
  bool WritesDone() { return call_->WritesDone().ok(); }
  bool Read(R* message) { return call_->Read(message); }
  absl::Status Finish() { return call_->Finish(); }

 private:
  std::unique_ptr<internal::ClientCall> call_;
};

// Server side of a client-streaming call: reads requests of type R.
template <class R>
class ServerReader {
 public:
  explicit ServerReader(internal::ServerCall* call) : call_(call) {}

  // Blocks for the next request. false: the client is done sending (or the
  // call was cancelled: check ServerContext::IsCancelled()).
  bool Read(R* message) { return call_->Read(message); }

 private:
  internal::ServerCall* call_;
};

// Server side of a server-streaming call: writes responses of type W.
template <class W>
class ServerWriter {
 public:
  explicit ServerWriter(internal::ServerCall* call) : call_(call) {}

  // Sends one response; blocks while the client is not keeping up. false: the
  // call is over (cancelled, deadline passed or the client went away).
  bool Write(const W& message) { return call_->Write(message); }

  // Sends the initial metadata now instead of with the first response.
  bool SendInitialMetadata() { return call_->SendInitialMetadata(); }

 private:
  internal::ServerCall* call_;
};

// Server side of a bidirectional call: writes W, reads R.
template <class W, class R>
class ServerReaderWriter {
 public:
  explicit ServerReaderWriter(internal::ServerCall* call) : call_(call) {}

  bool Read(R* message) { return call_->Read(message); }
  bool Write(const W& message) { return call_->Write(message); }
  bool SendInitialMetadata() { return call_->SendInitialMetadata(); }
  // Read may run on a second thread while the handler writes; EndReads()
  // makes that Read (and every later one) return false at once, for a
  // handler that needs no more requests (runtime/codegen/call_interfaces.h).
  void EndReads() { call_->EndReads(); }
  // Without waiting: true if the client has half-closed, so every request
  // is already here (*queued of them, if given, not yet read); false while
  // more may come, or once the call is over. A proxy uses it to forward a
  // complete request stream without a second thread.
  bool ClientHalfClosed(size_t* queued = nullptr) {
    size_t ignored = 0;
    return call_->ClientHalfClosed(queued != nullptr ? queued : &ignored);
  }

 private:
  internal::ServerCall* call_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SYNC_STREAM_H_
