#include "bridge/grpc_channel.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <utility>

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/sync.h"
#include "base/thread.h"
#include "bridge/grpc_mapping.h"
#include "runtime/byte_buffer.h"
#include "runtime/channel_schemes.h"
#include "runtime/codegen/call_interfaces.h"
#include "runtime/codegen/foreign_call.h"
#include "runtime/file_descriptor.h"

namespace ipcrpc {
namespace grpc_bridge {
namespace {

using internal::ForeignCallAccess;

// A completion queue for one call, waited on by the call's own threads: a
// thread that needs an operation's completion polls the queue itself when no
// other thread does, and hands completions of other operations to their
// waiters (so the common case — one thread per call — has no hand-off).
class CallQueue {
 public:
  ~CallQueue() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  grpc::CompletionQueue* cq() { return &cq_; }

  // Waits for the operation started with `tag`; its `ok`.
  bool Await(void* tag) {
    internal::MutexLock lock(&mu_);
    for (;;) {
      auto it = done_.find(tag);
      if (it != done_.end()) {
        bool ok = it->second;
        done_.erase(it);
        return ok;
      }
      if (polling_) {
        cv_.Wait(&mu_);
        continue;
      }
      polling_ = true;
      void* got_tag = nullptr;
      bool ok = false;
      mu_.Unlock();
      bool got = cq_.Next(&got_tag, &ok);
      mu_.Lock();
      polling_ = false;
      cv_.SignalAll();
      if (!got) return false;  // shut down; not reached while operations are pending
      done_[got_tag] = ok;
    }
  }

 private:
  grpc::CompletionQueue cq_;
  internal::Mutex mu_;
  internal::CondVar cv_;
  bool polling_ ABSL_GUARDED_BY(mu_) = false;
  std::map<void*, bool> done_ ABSL_GUARDED_BY(mu_);
};

// Sets up a gRPC context from an ipcrpc one.
absl::Status PrepareContext(ClientContext* context, grpc::ClientContext* grpc_context) {
  absl::Status mapped = AddClientMetadata(context->send_metadata(), grpc_context);
  if (!mapped.ok()) return mapped;
  if (context->deadline() != absl::InfiniteFuture()) {
    grpc_context->set_deadline(absl::ToChronoTime(context->deadline()));
  }
  grpc_context->set_wait_for_ready(context->wait_for_ready());
  return absl::OkStatus();
}

// What a call ends with: the status, the server's metadata in the context.
absl::Status CompleteContext(const grpc::Status& grpc_status, grpc::ClientContext* grpc_context,
                             ClientContext* context) {
  Metadata* initial = ForeignCallAccess::server_initial_metadata(context);
  initial->clear();
  AppendMetadata(grpc_context->GetServerInitialMetadata(), initial);
  Metadata* trailing = ForeignCallAccess::server_trailing_metadata(context);
  trailing->clear();
  AppendMetadata(grpc_context->GetServerTrailingMetadata(), trailing);
  return FromGrpcStatus(grpc_status, trailing);
}

// A streaming call over gRPC. Every gRPC operation is started at most when
// gRPC allows it (one read and one write outstanding, WritesDone and Finish
// once), whatever the caller does.
class GrpcCall final : public internal::ClientCall {
 public:
  // `request`, if not null, is the only request (a unary or server-streaming
  // call): it goes with the initial metadata and the half-close in one gRPC
  // batch (initial metadata corked, then WriteLast).
  GrpcCall(grpc::GenericStub& stub, const std::string& method, ClientContext* context,
           std::shared_ptr<const std::string> name, const grpc::ByteBuffer* request,
           absl::Status* start_error)
      : context_(context), name_(name) {
    *start_error = PrepareContext(context, &grpc_context_);
    if (!start_error->ok()) return;
    if (!ForeignCallAccess::SetCancelHook(context, [this] { grpc_context_.TryCancel(); })) {
      *start_error = absl::CancelledError("call cancelled before it started");
      return;
    }
    ForeignCallAccess::set_transport(context, std::move(name));
    // Corked, StartCall sends nothing (and its tag never completes): the
    // initial metadata waits for the first write. grpcpp uses one op set for
    // both, so without the cork a write must wait for the start's completion.
    if (request != nullptr) grpc_context_.set_initial_metadata_corked(true);
    call_ = stub.PrepareCall(&grpc_context_, method, queue_.cq());
    call_->StartCall(&start_tag_);
    if (request != nullptr) {
      writes_done_ = true;  // no other thread sees the call yet
      call_->WriteLast(*request, grpc::WriteOptions(), &write_tag_);
      started_ok_ = queue_.Await(&write_tag_);  // a failure shows in Read/Finish
    } else {
      started_ok_ = queue_.Await(&start_tag_);
    }
  }

  ~GrpcCall() override {
    if (call_ == nullptr) return;
    grpc_context_.TryCancel();  // no effect on a finished call
    Finish().IgnoreError();
    call_.reset();
  }

  // Operations are started under mu_ (starting one never blocks, and
  // completions come through queue_, not callbacks), so none starts after
  // Finish did.
  absl::Status Write(const google::protobuf::MessageLite& message) override {
    absl::Status no_fds = CheckNoFds(message, *name_);
    if (!no_fds.ok()) {  // the call ends with this status
      internal::MutexLock lock(&mu_);
      if (forced_.ok()) forced_ = no_fds;
      grpc_context_.TryCancel();
      return no_fds;
    }
    grpc::ByteBuffer buffer = ToGrpcBuffer(message.SerializeAsString());
    {
      internal::MutexLock lock(&mu_);
      if (writes_done_ || finishing_ || !started_ok_) {
        return absl::FailedPreconditionError("the call is over or half-closed");
      }
      call_->Write(buffer, &write_tag_);
    }
    if (!queue_.Await(&write_tag_)) return absl::UnavailableError("the call is over");
    return absl::OkStatus();
  }

  absl::Status WritesDone() override {
    {
      internal::MutexLock lock(&mu_);
      if (writes_done_ || finishing_ || !started_ok_) return absl::OkStatus();
      writes_done_ = true;
      call_->WritesDone(&writes_done_tag_);
    }
    queue_.Await(&writes_done_tag_);
    return absl::OkStatus();
  }

  bool Read(google::protobuf::MessageLite* message) override {
    grpc::ByteBuffer buffer;
    {
      internal::MutexLock lock(&mu_);
      if (reads_over_ || finishing_ || !started_ok_) return false;
      call_->Read(&buffer, &read_tag_);
    }
    if (!queue_.Await(&read_tag_)) {
      internal::MutexLock lock(&mu_);
      reads_over_ = true;
      return false;
    }
    std::string bytes;
    if (!FromGrpcBuffer(buffer, &bytes) || !message->ParseFromString(bytes)) {
      internal::MutexLock lock(&mu_);
      reads_over_ = true;
      forced_ = absl::InternalError(
          absl::StrCat("a response from the gRPC server does not parse as ",
                       message->GetTypeName()));
      grpc_context_.TryCancel();
      return false;
    }
    ForeignCallAccess::ClearFdHandles(message);
    if (!initial_metadata_copied_) {  // gRPC has it once a message arrived
      initial_metadata_copied_ = true;
      Metadata* initial = ForeignCallAccess::server_initial_metadata(context_);
      initial->clear();
      AppendMetadata(grpc_context_.GetServerInitialMetadata(), initial);
    }
    return true;
  }

  absl::Status Finish() override {
    grpc::Status grpc_status;
    {
      internal::MutexLock lock(&mu_);
      if (finishing_) {
        while (!finished_) finished_cv_.Wait(&mu_);
        return status_;
      }
      finishing_ = true;
      call_->Finish(&grpc_status, &finish_tag_);
    }
    queue_.Await(&finish_tag_);
    ForeignCallAccess::ClearCancelHook(context_);
    absl::Status status = CompleteContext(grpc_status, &grpc_context_, context_);
    internal::MutexLock lock(&mu_);
    finished_ = true;
    finished_cv_.SignalAll();
    status_ = forced_.ok() ? status : forced_;
    return status_;
  }

  void Cancel() override { grpc_context_.TryCancel(); }

 private:
  ClientContext* const context_;
  const std::shared_ptr<const std::string> name_;
  CallQueue queue_;  // after grpc_context_ and call_ in destruction order
  grpc::ClientContext grpc_context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool started_ok_ = false;  // set before any other thread sees the call
  bool initial_metadata_copied_ = false;  // the reading thread's
  char start_tag_ = 0, write_tag_ = 0, writes_done_tag_ = 0, read_tag_ = 0, finish_tag_ = 0;

  internal::Mutex mu_;
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_over_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;  // Finish started
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  internal::CondVar finished_cv_;
  absl::Status forced_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

class GrpcChannel final : public Channel, public std::enable_shared_from_this<GrpcChannel> {
 public:
  GrpcChannel(std::shared_ptr<grpc::Channel> channel, std::string name)
      : channel_(std::move(channel)),
        stub_(channel_),
        name_(std::make_shared<const std::string>(std::move(name))) {}

  std::string target() const override { return *name_; }

 private:
  absl::Status UnaryCall(const MethodDescriptor& method, ClientContext* context,
                         const google::protobuf::MessageLite& request,
                         google::protobuf::MessageLite* response) override {
    IPCRPC_RETURN_IF_ERROR(CheckNoFds(request, *name_));
    grpc::ClientContext grpc_context;
    absl::Status prepared = PrepareContext(context, &grpc_context);
    if (!prepared.ok()) return prepared;
    if (!ForeignCallAccess::SetCancelHook(context, [&grpc_context] { grpc_context.TryCancel(); })) {
      return absl::CancelledError("call cancelled before it started");
    }
    ForeignCallAccess::set_transport(context, name_);
    grpc::ByteBuffer request_buffer = ToGrpcBuffer(request.SerializeAsString());
    grpc::ByteBuffer response_buffer;
    grpc::Status grpc_status;
    {
      CallQueue queue;
      std::unique_ptr<grpc::GenericClientAsyncResponseReader> call = stub_.PrepareUnaryCall(
          &grpc_context, std::string(method.name), request_buffer, queue.cq());
      call->StartCall();
      char tag = 0;
      call->Finish(&response_buffer, &grpc_status, &tag);
      queue.Await(&tag);
    }
    ForeignCallAccess::ClearCancelHook(context);
    absl::Status status = CompleteContext(grpc_status, &grpc_context, context);
    if (!status.ok()) return status;
    std::string bytes;
    if (!FromGrpcBuffer(response_buffer, &bytes) || !response->ParseFromString(bytes)) {
      return absl::InternalError(absl::StrCat("the response of ", method.name,
                                              " from the gRPC server does not parse as ",
                                              response->GetTypeName()));
    }
    ForeignCallAccess::ClearFdHandles(response);
    return absl::OkStatus();
  }

  void AsyncUnaryCall(const MethodDescriptor& method, ClientContext* context,
                      const google::protobuf::MessageLite& request,
                      google::protobuf::MessageLite* response,
                      std::function<void(absl::Status)> done) override {
    absl::Status no_fds = CheckNoFds(request, *name_);
    if (!no_fds.ok()) {
      done(no_fds);
      return;
    }
    // `request` is only valid until this returns.
    auto request_copy = std::make_shared<ByteBuffer>(request.SerializeAsString());
    std::shared_ptr<GrpcChannel> self = shared_from_this();
    auto body = [self, method, context, request_copy, response, done]() mutable {
      done(self->UnaryCall(method, context, *request_copy, response));
    };
    absl::StatusOr<std::thread> thread = internal::StartThread(body);
    if (thread.ok()) {
      thread->detach();
    } else {
      done(thread.status());
    }
  }

  std::unique_ptr<internal::ClientCall> StartCall(
      const MethodDescriptor& method, ClientContext* context,
      const google::protobuf::MessageLite* request) override {
    grpc::ByteBuffer request_buffer;
    if (request != nullptr) {
      absl::Status no_fds = CheckNoFds(*request, *name_);
      if (!no_fds.ok()) return std::make_unique<internal::FailedClientCall>(no_fds);
      request_buffer = ToGrpcBuffer(request->SerializeAsString());
    }
    absl::Status start_error;
    auto call = std::make_unique<GrpcCall>(stub_, std::string(method.name), context, name_,
                                           request != nullptr ? &request_buffer : nullptr,
                                           &start_error);
    if (!start_error.ok()) return std::make_unique<internal::FailedClientCall>(start_error);
    return call;
  }

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  std::shared_ptr<const std::string> name_;
};

absl::StatusOr<std::string> ReadRootCerts(const GrpcAddressOptions& options) {
  if (!options.root_certs_pem.empty()) return options.root_certs_pem;
  const char* path = std::getenv(kRootCertsEnv);
  if (path == nullptr || *path == '\0') return std::string();  // the system's roots
  std::ifstream file(path);
  std::stringstream pem;
  pem << file.rdbuf();
  if (!file || pem.str().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(kRootCertsEnv, "=", path, ": cannot read a PEM file there"));
  }
  return pem.str();
}

}  // namespace

absl::StatusOr<std::shared_ptr<Channel>> CreateGrpcAddressChannel(
    absl::string_view address, const ChannelOptions& options,
    const GrpcAddressOptions& grpc_options) {
  bool tls = absl::StartsWith(address, "grpcs:");
  if (!tls && !absl::StartsWith(address, "grpc:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", address, "\" is not a grpc:HOST:PORT or grpcs:HOST:PORT address"));
  }
  absl::string_view target = address.substr(tls ? 6 : 5);
  if (target.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", address, "\": no gRPC target after the scheme (e.g. ",
                     tls ? "grpcs" : "grpc", ":localhost:50051)"));
  }
  for (char c : target) {
    if (c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", absl::CEscape(address), "\": the gRPC target has a space or a control character"));
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls) {
    absl::StatusOr<std::string> roots = ReadRootCerts(grpc_options);
    if (!roots.ok()) return roots.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *roots;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(static_cast<int>(options.max_send_message_size));
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_size));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(std::string(target), credentials, args);
  return WrapGrpcChannel(std::move(channel), std::string(address));
}

std::shared_ptr<Channel> WrapGrpcChannel(std::shared_ptr<grpc::Channel> channel,
                                         std::string name) {
  return std::make_shared<GrpcChannel>(std::move(channel), std::move(name));
}

void RegisterGrpcAddressSchemes(const GrpcAddressOptions& options) {
  ChannelFactory factory = [options](absl::string_view address,
                                     const ChannelOptions& channel_options) {
    return CreateGrpcAddressChannel(address, channel_options, options);
  };
  RegisterChannelScheme("grpc", factory);
  RegisterChannelScheme("grpcs", factory);
}

namespace {
// Linking this library is what makes "grpc:" addresses work (alwayslink).
const bool kRegistered = (RegisterGrpcAddressSchemes(), true);
}  // namespace

}  // namespace grpc_bridge
}  // namespace ipcrpc
