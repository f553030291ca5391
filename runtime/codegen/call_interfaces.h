// ipcrpc codegen support: the untyped call interfaces the typed API is built on.
//
// ClientCall and ServerCall are one RPC as seen from each end, with messages
// as protobuf MessageLite (serialized straight into the outgoing frame and
// parsed straight from the receive buffer). The typed readers/writers in
// runtime/sync_stream.h and the handlers in runtime/codegen/method_handler.h
// are thin templates over these; connections implement them.
//
// Applications do not use these directly: generated code and users go through
// sync_stream.h, channel.h and service.h (see runtime/codegen/method_handler.h
// for what runtime/codegen/ is).

#ifndef IPCRPC_RUNTIME_CODEGEN_CALL_INTERFACES_H_
#define IPCRPC_RUNTIME_CODEGEN_CALL_INTERFACES_H_

#include <memory>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace ipcrpc {
class ClientContext;
class ServerContext;

namespace internal {
class ServerReactor;

// One call from the client's side. Read/Write/WritesDone may be used by one
// thread each at a time (one reader and one writer may run concurrently);
// Cancel may be called from any thread at any time.
class ClientCall {
 public:
  virtual ~ClientCall() = default;

  // Sends one message, waiting (until the call's deadline) for flow-control
  // credit. An error means the call is over; Finish() says why.
  virtual absl::Status Write(const google::protobuf::MessageLite& message) = 0;

  // Tells the server no more messages follow (half-close).
  virtual absl::Status WritesDone() = 0;

  // Reads the next message into *message. true: a message was read; false: the
  // server ended its stream or the call failed (Finish() says which).
  virtual bool Read(google::protobuf::MessageLite* message) = 0;

  // Waits for the server's final status and trailing metadata. Idempotent.
  virtual absl::Status Finish() = 0;

  // Cancels the call: the server sees CANCELLED, Finish() returns CANCELLED.
  virtual void Cancel() = 0;
};

// A call that could not start (no connection, a refused start): every
// operation reports `status`; Read() returns false.
class FailedClientCall final : public ClientCall {
 public:
  explicit FailedClientCall(absl::Status status) : status_(std::move(status)) {}
  absl::Status Write(const google::protobuf::MessageLite&) override { return status_; }
  absl::Status WritesDone() override { return status_; }
  bool Read(google::protobuf::MessageLite*) override { return false; }
  absl::Status Finish() override { return status_; }
  void Cancel() override {}

 private:
  absl::Status status_;
};

// What a reactor (runtime/server_callback.h) asks of its call. Each starts an
// operation and returns at once; its reaction (OnReadDone, OnWriteDone,
// OnSendInitialMetadataDone, then OnDone) runs later on a runtime thread,
// never inside the call that started it. At most one read and one write may
// be outstanding at a time.
class ServerReactorCall {
 public:
  virtual ~ServerReactorCall() = default;
  virtual void StartSendInitialMetadata() = 0;
  // Reads the next request into *message (alive until OnReadDone).
  virtual void StartRead(google::protobuf::MessageLite* message) = 0;
  // Writes *message (alive until OnWriteDone), when flow control allows.
  virtual void StartWrite(const google::protobuf::MessageLite* message) = 0;
  // Writes *message, then finishes with `status`; no OnWriteDone follows.
  virtual void StartWriteAndFinish(const google::protobuf::MessageLite* message,
                                   absl::Status status) = 0;
  // Ends the call with `status` once a write in progress is done; for unary
  // and client-streaming calls an OK status sends the method's response.
  virtual void Finish(absl::Status status) = 0;
};

// One call from the server's side; used by the handler's thread, except that
// one other thread may Read (or EndReads) while the handler's thread writes
// (a proxy forwarding both directions at once), and IsCancelled(), which any
// thread may call.
class ServerCall {
 public:
  virtual ~ServerCall() = default;

  // Reads the next client message. true: read; false: the client half-closed,
  // cancelled, or the message was malformed (the call then fails).
  virtual bool Read(google::protobuf::MessageLite* message) = 0;

  // Waits until the next event and says whether the client has sent all its
  // messages (true also when the call is cancelled or failed); consumes nothing.
  virtual bool AtEndOfStream() = 0;

  // Without waiting: true if the client has half-closed (so every request
  // it will send is already here, `*queued` of them not yet Read), false if
  // more may come or the call is over. A proxy uses it to forward a complete
  // request stream from one thread.
  virtual bool ClientHalfClosed(size_t* queued) { return false; }

  // Makes every Read, now blocked or later, return false at once: the
  // handler needs no more requests (e.g. a proxy whose upstream call ended
  // before its client half-closed). Requests that still arrive are dropped.
  virtual void EndReads() = 0;

  // Sends one response message (sends initial metadata first if not yet sent),
  // waiting for flow-control credit. false if the call is over.
  virtual bool Write(const google::protobuf::MessageLite& message) = 0;

  // Sends the server's initial metadata now (otherwise it goes with the first
  // message or the trailers).
  virtual bool SendInitialMetadata() = 0;

  // Ends the call with `status`; `last_message`, if given and status is OK, is
  // sent just before the trailers (in the same write). Called exactly once by
  // the runtime's handler wrappers.
  virtual void Finish(const absl::Status& status,
                      const google::protobuf::MessageLite* last_message) = 0;

  virtual ServerContext& context() = 0;

  // The status Finish(status, ...) would send now: `status`, unless the
  // runtime replaces it (a request it refused, a deadline that passed).
  // For interceptors (runtime/interceptor.h), which see the final status.
  virtual absl::Status StatusToSend(const absl::Status& status) { return status; }

  // Serves the call with a reactor (callback methods, method_handler.h):
  // runs `make` (the application's method, which returns the reactor) on
  // this thread, then returns; the call goes on with no thread of its own,
  // its reactions running on runtime threads until OnDone. `state` (the
  // request and response objects) is kept until OnDone; `response`, if not
  // null, is what an OK Finish sends.
  virtual void StartReactor(absl::FunctionRef<ServerReactor*()> make, std::shared_ptr<void> state,
                            const google::protobuf::MessageLite* response) = 0;
};

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CODEGEN_CALL_INTERFACES_H_
