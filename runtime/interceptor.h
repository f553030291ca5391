// ipcrpc: client and server interceptors.
//
// An interceptor sees every call of a channel (client) or a server at fixed
// hook points, in the shape of grpcpp's experimental interceptors
// (grpcpp/support/interceptor.h): a factory makes one Interceptor per call,
// and its Intercept() is called with an InterceptorBatchMethods that says
// which hook points the batch holds and gives access to what they carry.
// An interceptor can read and change metadata, observe messages (as the
// protobuf message; MessageLite::SerializeAsString() gives the bytes) and
// the final status, and — as an ipcrpc addition — end a call before it goes
// out (client) or before its handler runs (server) with FailCall().
//
// Hook points, in the order a call meets them:
//   client: PRE_SEND_INITIAL_METADATA (metadata mutable; FailCall allowed)
//           PRE_SEND_MESSAGE, PRE_SEND_CLOSE          — per request / WritesDone
//           POST_RECV_INITIAL_METADATA, POST_RECV_MESSAGE — per response
//           POST_RECV_STATUS (status and trailing metadata mutable)
//   server: POST_RECV_INITIAL_METADATA (client metadata mutable, peer in
//             ServerRpcInfo::server_context(); FailCall allowed: the handler
//             never runs)
//           POST_RECV_MESSAGE                          — per request read
//           PRE_SEND_INITIAL_METADATA (mutable), PRE_SEND_MESSAGE
//           PRE_SEND_STATUS (status and trailing metadata mutable; the status
//             is the one that will be sent: a deadline that passed or a
//             request the runtime refused already replaces the handler's)
// As in grpcpp, interceptors run in the order their factories were given for
// PRE_* batches and in reverse order for POST_* batches. A unary call's
// request is one batch (PRE_SEND_INITIAL_METADATA + PRE_SEND_MESSAGE +
// PRE_SEND_CLOSE); its response and status another.
//
// Differences from grpcpp: ipcrpc runs interceptors synchronously on the
// calling thread, so Intercept() must call Proceed() before it returns (a
// missing Proceed() is treated as one); there is no Hijack(). A call that
// ends without Finish() (the reader/writer destroyed early) reports
// POST_RECV_STATUS with CANCELLED. Calls the server refuses before any
// handler (unknown method, overload) are not intercepted.
//
// Cost: a channel or server without interceptors runs exactly the code it
// ran before they existed — no allocation, no virtual call per call. With
// interceptors, each call allocates its interceptors.
//
// Thread-safety: factories are called concurrently from many calls; an
// Interceptor belongs to one call, but a streaming call's reading and
// writing threads may run its Intercept() concurrently (one with POST_RECV
// hooks, the other with PRE_SEND hooks).
// Lifetime: a channel or server owns its factories.
//
// Example (server: refuse other users before the handler runs):
//   class UidCheck final : public ipcrpc::experimental::Interceptor {
//    public:
//     explicit UidCheck(ipcrpc::experimental::ServerRpcInfo* info) : info_(info) {}
//     void Intercept(ipcrpc::experimental::InterceptorBatchMethods* m) override {
//       if (m->QueryInterceptionHookPoint(
//               ipcrpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
//           info_->server_context()->peer().uid != getuid()) {
//         m->FailCall(absl::PermissionDeniedError("not your server"));
//       }
//       m->Proceed();
//     }
//    private:
//     ipcrpc::experimental::ServerRpcInfo* info_;
//   };
//   class UidCheckFactory final : public ipcrpc::experimental::ServerInterceptorFactoryInterface {
//     ipcrpc::experimental::Interceptor* CreateServerInterceptor(
//         ipcrpc::experimental::ServerRpcInfo* info) override { return new UidCheck(info); }
//   };
//   std::vector<std::unique_ptr<ipcrpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(std::make_unique<UidCheckFactory>());
//   builder.experimental().SetInterceptorCreators(std::move(f));

#ifndef IPCRPC_RUNTIME_INTERCEPTOR_H_
#define IPCRPC_RUNTIME_INTERCEPTOR_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "runtime/client_context.h"
#include "runtime/metadata.h"
#include "runtime/method.h"
#include "runtime/server_context.h"

namespace ipcrpc {
class Channel;

namespace experimental {

// Where in a call a batch of interception happens (the names are grpcpp's).
enum class InterceptionHookPoints {
  PRE_SEND_INITIAL_METADATA,
  PRE_SEND_MESSAGE,
  PRE_SEND_STATUS,  // server only
  PRE_SEND_CLOSE,   // client only: the client sends no more requests
  POST_RECV_INITIAL_METADATA,
  POST_RECV_MESSAGE,
  POST_RECV_STATUS,  // client only
  NUM_INTERCEPTION_HOOKS
};

// What Intercept() is given: which hook points this batch holds, and access
// to what they carry. Each getter returns null when its hook point is not in
// the batch. Valid only during the Intercept() call.
class InterceptorBatchMethods {
 public:
  virtual ~InterceptorBatchMethods() = default;

  virtual bool QueryInterceptionHookPoint(InterceptionHookPoints type) = 0;
  // Lets the call go on to the next interceptor (see the header comment).
  virtual void Proceed() = 0;

  // PRE_SEND_MESSAGE: the message about to be sent (serialized after the
  // batch; do not change it).
  virtual const google::protobuf::MessageLite* GetSendMessage() = 0;
  // PRE_SEND_INITIAL_METADATA: client: the call's metadata; server: its
  // initial metadata. Entries added or removed here are what is sent.
  virtual Metadata* GetSendInitialMetadata() = 0;
  // PRE_SEND_STATUS (server): the status that will be sent, and a way to
  // change it; the trailing metadata (mutable).
  virtual absl::Status GetSendStatus() = 0;
  virtual void ModifySendStatus(const absl::Status& status) = 0;
  virtual Metadata* GetSendTrailingMetadata() = 0;

  // POST_RECV_MESSAGE: the message just received (already parsed).
  virtual google::protobuf::MessageLite* GetRecvMessage() = 0;
  // POST_RECV_INITIAL_METADATA: client: the server's initial metadata;
  // server: the client's metadata (mutable: the handler sees the result).
  virtual Metadata* GetRecvInitialMetadata() = 0;
  // POST_RECV_STATUS (client): the final status (mutable: the application
  // sees the result) and the server's trailing metadata.
  virtual absl::Status* GetRecvStatus() = 0;
  virtual Metadata* GetRecvTrailingMetadata() = 0;

  // ipcrpc addition. In a client's PRE_SEND_INITIAL_METADATA batch: the call
  // is not sent and ends with `status`. In a server's
  // POST_RECV_INITIAL_METADATA batch: the handler does not run and the call
  // ends with `status`. Later interceptors of that batch are skipped; every
  // interceptor still sees the final status (POST_RECV_STATUS /
  // PRE_SEND_STATUS). `status` must not be OK (OK becomes UNKNOWN). Ignored
  // in other batches.
  virtual void FailCall(absl::Status status) = 0;
};

class Interceptor {
 public:
  virtual ~Interceptor() = default;
  virtual void Intercept(InterceptorBatchMethods* methods) = 0;
};

// The call a client interceptor is made for.
class ClientRpcInfo {
 public:
  ClientRpcInfo(absl::string_view method, RpcKind type, ClientContext* context,
                Channel* channel)
      : method_(method), type_(type), context_(context), channel_(channel) {}
  absl::string_view method() const { return method_; }  // "/pkg.Service/Method"
  RpcKind type() const { return type_; }
  ClientContext* client_context() const { return context_; }  // may be null
  Channel* channel() const { return channel_; }

 private:
  absl::string_view method_;
  RpcKind type_;
  ClientContext* context_;
  Channel* channel_;
};

// The call a server interceptor is made for.
class ServerRpcInfo {
 public:
  ServerRpcInfo(absl::string_view method, RpcKind type, ServerContext* context)
      : method_(method), type_(type), context_(context) {}
  absl::string_view method() const { return method_; }
  RpcKind type() const { return type_; }  // generic calls: kBidiStreaming
  ServerContext* server_context() const { return context_; }

 private:
  absl::string_view method_;
  RpcKind type_;
  ServerContext* context_;
};

// Makes one interceptor per call; may return null to skip that call. The
// call owns what it returns. Called concurrently.
class ClientInterceptorFactoryInterface {
 public:
  virtual ~ClientInterceptorFactoryInterface() = default;
  virtual Interceptor* CreateClientInterceptor(ClientRpcInfo* info) = 0;
};

class ServerInterceptorFactoryInterface {
 public:
  virtual ~ServerInterceptorFactoryInterface() = default;
  virtual Interceptor* CreateServerInterceptor(ServerRpcInfo* info) = 0;
};

// A channel that runs `creators`' interceptors on every call and then makes
// the call on `channel`. With no creators, returns `channel` itself.
// (CreateChannelWithInterceptors in runtime/ipcrpc.h does this for an
// address.)
std::shared_ptr<Channel> InterceptChannel(
    std::shared_ptr<Channel> channel,
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators);

}  // namespace experimental
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_INTERCEPTOR_H_
