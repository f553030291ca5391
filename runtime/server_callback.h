// ipcrpc: the server's callback (reactor) API, shaped like grpcpp's.
//
// A callback method returns a reactor instead of running the call to its
// end: the reactor starts operations (StartRead, StartWrite, Finish) that
// return at once, and the runtime calls its reactions (OnReadDone,
// OnWriteDone, OnCancel, OnDone) as they complete. A call waiting for its
// next request or for flow-control credit holds no thread, so a server can
// keep thousands of open streams (watch/subscribe APIs) on a few threads.
//
// Generated code offers, per service, `Greeter::CallbackService` (every
// method a callback method) and `Greeter::WithCallbackMethod_X<Base>` (method
// X a callback method, the others as in Base), as grpcpp does.
//
// Rules (as in grpcpp):
//  - Reactions of one reactor never run concurrently, and never inside the
//    Start*/Finish call that caused them; they run on the thread that read
//    the frame (if quick, as inline handlers do) or on the server's pool.
//    They should not block: a blocked reaction holds a runtime thread.
//  - At most one read and one write may be outstanding at a time.
//  - Every call must be finished (Finish or StartWriteAndFinish), also after
//    OnCancel; OnDone is the last reaction, after which the runtime never
//    touches the reactor again (delete it there, if it owns itself).
//  - Construct the reactor inside the method (on the thread that runs it):
//    that is how it finds its call.
//
// Thread-safety: Start*/Finish may be called from any thread, including
// from inside reactions. Lifetime: the request/response objects the runtime
// passes to the method live until OnDone; a message given to StartRead or
// StartWrite must stay alive until its reaction.
//
// Example (server-streaming):
//   class Lister : public ipcrpc::ServerWriteReactor<Feature> {
//    public:
//     explicit Lister(std::vector<Feature> all) : all_(std::move(all)) { Next(); }
//     void OnWriteDone(bool ok) override { ok ? Next() : Finish(absl::CancelledError("gone")); }
//     void OnDone() override { delete this; }
//    private:
//     void Next() {
//       if (i_ == all_.size()) return Finish(absl::OkStatus());
//       StartWrite(&all_[i_++]);
//     }
//     std::vector<Feature> all_;
//     size_t i_ = 0;
//   };
//   ipcrpc::ServerWriteReactor<Feature>* ListFeatures(ipcrpc::CallbackServerContext*,
//                                                     const Rectangle* r) override {
//     return new Lister(Lookup(*r));
//   }

#ifndef IPCRPC_RUNTIME_SERVER_CALLBACK_H_
#define IPCRPC_RUNTIME_SERVER_CALLBACK_H_

#include <utility>

#include "absl/status/status.h"
#include "runtime/codegen/call_interfaces.h"

namespace ipcrpc {
class CallbackServerContext;

namespace internal {

// The untyped base of every reactor: its call, and the reactions the
// runtime invokes. The typed reactors below make public the ones that apply.
class ServerReactor {
 public:
  virtual ~ServerReactor() = default;
  ServerReactor(const ServerReactor&) = delete;
  ServerReactor& operator=(const ServerReactor&) = delete;

  // The call is over and no other reaction will follow.
  virtual void OnDone() = 0;
  // The client cancelled, the deadline passed, or the connection or the
  // server went away. The reactor must still Finish.
  virtual void OnCancel() {}

 protected:
  // Binds to the call whose method is running on this thread.
  ServerReactor();
  ServerReactorCall* call() const { return call_; }

 private:
  friend struct ReactorAccess;
  virtual void OnSendInitialMetadataDone(bool /*ok*/) {}
  virtual void OnReadDone(bool /*ok*/) {}
  virtual void OnWriteDone(bool /*ok*/) {}

  ServerReactorCall* call_;
};

// For the runtime (the call, the interceptors): a reactor's binding and
// reactions.
struct ReactorAccess {
  // Binds `reactor` to `call` unless it found its call when constructed.
  static void BindIfUnbound(ServerReactor* reactor, ServerReactorCall* call) {
    if (reactor->call_ == nullptr) reactor->call_ = call;
  }
  static void OnSendInitialMetadataDone(ServerReactor* reactor, bool ok) {
    reactor->OnSendInitialMetadataDone(ok);
  }
  static void OnReadDone(ServerReactor* reactor, bool ok) { reactor->OnReadDone(ok); }
  static void OnWriteDone(ServerReactor* reactor, bool ok) { reactor->OnWriteDone(ok); }
  // What `context`'s reactors bind to (CallbackServerContext::DefaultReactor);
  // the first setter wins, so interceptors set it before the call does.
  static void SetReactorCallIfUnset(CallbackServerContext& context, ServerReactorCall* call);
};

// Makes reactors constructed on this thread bind to `call` while alive (the
// runtime, around a callback method).
class ScopedReactorBinding {
 public:
  explicit ScopedReactorBinding(ServerReactorCall* call);
  ~ScopedReactorBinding();
  // What a reactor constructed now would bind to (null: nothing).
  static ServerReactorCall* Current();
  ScopedReactorBinding(const ScopedReactorBinding&) = delete;
  ScopedReactorBinding& operator=(const ScopedReactorBinding&) = delete;

 private:
  ServerReactorCall* const previous_;
};

}  // namespace internal

// A unary call: the method fills in the response, then Finish()es (at once
// or later, from any thread).
class ServerUnaryReactor : public internal::ServerReactor {
 public:
  // Sends the initial metadata now; OnSendInitialMetadataDone follows.
  void StartSendInitialMetadata() { call()->StartSendInitialMetadata(); }
  // Ends the call; an OK status sends the response the method was given.
  void Finish(absl::Status status) { call()->Finish(std::move(status)); }

  void OnSendInitialMetadataDone(bool /*ok*/) override {}
};

// A client-streaming call: reads requests of type Request; the response the
// method was given is sent by an OK Finish.
template <class Request>
class ServerReadReactor : public internal::ServerReactor {
 public:
  void StartSendInitialMetadata() { call()->StartSendInitialMetadata(); }
  // Reads the next request into *request (alive until OnReadDone).
  // OnReadDone(false): the client half-closed, or the call is over.
  void StartRead(Request* request) { call()->StartRead(request); }
  void Finish(absl::Status status) { call()->Finish(std::move(status)); }

  void OnSendInitialMetadataDone(bool /*ok*/) override {}
  void OnReadDone(bool /*ok*/) override {}
};

// A server-streaming call: writes responses of type Response.
template <class Response>
class ServerWriteReactor : public internal::ServerReactor {
 public:
  void StartSendInitialMetadata() { call()->StartSendInitialMetadata(); }
  // Writes *response (alive until OnWriteDone) once the client's flow
  // control allows. OnWriteDone(false): the call is over.
  void StartWrite(const Response* response) { call()->StartWrite(response); }
  // Writes *response and finishes with `status`, in one write when it can;
  // no OnWriteDone follows.
  void StartWriteAndFinish(const Response* response, absl::Status status) {
    call()->StartWriteAndFinish(response, std::move(status));
  }
  // Ends the call, after a write in progress.
  void Finish(absl::Status status) { call()->Finish(std::move(status)); }

  void OnSendInitialMetadataDone(bool /*ok*/) override {}
  void OnWriteDone(bool /*ok*/) override {}
};

// A bidirectional call: reads Request, writes Response; a read and a write
// may be outstanding at the same time.
template <class Request, class Response>
class ServerBidiReactor : public internal::ServerReactor {
 public:
  void StartSendInitialMetadata() { call()->StartSendInitialMetadata(); }
  void StartRead(Request* request) { call()->StartRead(request); }
  void StartWrite(const Response* response) { call()->StartWrite(response); }
  void StartWriteAndFinish(const Response* response, absl::Status status) {
    call()->StartWriteAndFinish(response, std::move(status));
  }
  void Finish(absl::Status status) { call()->Finish(std::move(status)); }

  void OnSendInitialMetadataDone(bool /*ok*/) override {}
  void OnReadDone(bool /*ok*/) override {}
  void OnWriteDone(bool /*ok*/) override {}
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SERVER_CALLBACK_H_
