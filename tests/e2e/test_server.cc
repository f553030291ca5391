// The server process of the end-to-end tests.
//
//   test_server unix:/path.sock [--grace_ms=N]   listen on an address
//   (spawned with an inherited socketpair)        serve that connection
//
// Besides TestService, a generic service (runtime/generic_service.h) serves
// unknown methods when asked:
//   --generic_echo          echoes every message of any other method (see
//                           GenericEcho)
//   --health                serves grpc.health.v1.Health (EnableHealthService);
//                           TestService.SetHealth changes statuses
//   --reflection            serves grpc.reflection.v1 and v1alpha
//                           (EnableReflection); with --generic_echo it also
//                           describes ipcrpc.test.dynamic.DynamicEcho, which
//                           the generic echo serves (see DynamicEchoPool)
//   --proxy_to=ADDRESS      forwards every method, byte for byte, to the
//                           server at ADDRESS (see GenericProxy); TestService
//                           is then not served here
//   --grpc_listen=HOST:PORT (bridge_test_server only: this file built with
//                           IPCRPC_TEST_SERVER_GRPC_BRIDGE) serves everything
//                           over gRPC too (bridge/grpc_server_bridge.h) and
//                           prints "GRPC_PORT=N" before READY
//
// Callback API (runtime/server_callback.h):
//   --callback              serves TestService with reactors instead
//                           (tests/e2e/callback_test_service.h)
//
// Interceptors (tests/e2e/test_interceptors.h):
//   --interceptors          TaggingInterceptor, a CallMetrics (ServerMetrics
//                           reads it) and the logging interceptor
//   --log_calls_to=PATH     with --interceptors: the log lines go to PATH
//   --deny_uid=UID          refuses that uid's calls before their handlers
//
// Compression (runtime/compression.h):
//   --compress              responses gzip-compressed by default (clients
//                           that accept it); Echo's client metadata
//                           "response-compression: identity|gzip" overrides
//                           it per call (ServerContext::set_compression_algorithm)
//   --no_accept_compression the server's HELLO offers no decompression
//
// Resource limits, applied once the server runs (before READY):
//   --max_fds=N             RLIMIT_NOFILE = N (set before the server starts)
//   --nproc_headroom=N      drops to a uid/gid of its own (3e9 + pid; needs root) with
//                           RLIMIT_NPROC = the process's threads now + N, so
//                           the N+1st new thread is refused by the kernel
//
// SIGTERM shuts the server down with a drain deadline of --grace_ms
// (default 2000). Prints "READY" on stdout once serving.

#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/text_format.h"
#include "runtime/generic_service.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "runtime/logging_interceptor.h"
#include "runtime/metrics_interceptor.h"
#include "tests/e2e/callback_test_service.h"
#include "tests/e2e/test_interceptors.h"
#include "runtime/file_descriptor.h"
#include "tests/e2e/fd_service.ipcrpc.pb.h"
#include "tests/e2e/fd_util.h"
#include "tests/e2e/shared_buffer_service_impl.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#ifdef IPCRPC_TEST_SERVER_GRPC_BRIDGE
#include "bridge/grpc_server_bridge.h"
#endif

namespace ipcrpc::test {
namespace {

#define IPCRPC_TEST_RETURN_IF_ERROR(expr)        \
  do {                                           \
    if (absl::Status s_ = (expr); !s_.ok()) return s_; \
  } while (0)

// Sleeps `ms`, returning false early if the call is cancelled.
bool SleepUnlessCancelled(ServerContext* ctx, int ms) {
  absl::Time until = absl::Now() + absl::Milliseconds(ms);
  while (absl::Now() < until) {
    if (ctx->IsCancelled()) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return !ctx->IsCancelled();
}

class TestServiceImpl final : public TestService::Service {
 public:
  ~TestServiceImpl() override {
    for (std::thread& t : detached_) t.join();
  }

  absl::Status Echo(ServerContext* ctx, const Request* request, Response* response) override {
    for (const auto& [key, value] : ctx->client_metadata()) {
      if (key == "response-compression") {
        ctx->set_compression_algorithm(value == "gzip" ? CompressionAlgorithm::kGzip
                                                       : CompressionAlgorithm::kNone);
      }
      if (absl::StartsWith(key, "echo-")) {
        ctx->AddInitialMetadata("initial-" + key.substr(5), value);
        ctx->AddTrailingMetadata("trailing-" + key.substr(5), value);
      }
    }
    if (request->delay_ms() > 0 && !SleepUnlessCancelled(ctx, request->delay_ms())) {
      return absl::CancelledError("cancelled while sleeping");
    }
    if (request->status_code() != 0) {
      // A status's details travel as this trailing entry (docs/GRPC_BRIDGE.md).
      auto details = ctx->client_metadata().find("details-bin");
      if (details != ctx->client_metadata().end()) {
        ctx->AddTrailingMetadata("grpc-status-details-bin", details->second);
      }
      return absl::Status(static_cast<absl::StatusCode>(request->status_code()),
                          request->status_message());
    }
    response->set_text(request->text());
    response->set_payload(request->payload());
    response->set_peer_pid(ctx->peer().pid);
    return absl::OkStatus();
  }

  absl::Status ServerStream(ServerContext* ctx, const Request* request,
                            ServerWriter<Response>* writer) override {
    for (int i = 0; i < request->count(); ++i) {
      if (request->delay_ms() > 0 && !SleepUnlessCancelled(ctx, request->delay_ms())) {
        return absl::CancelledError("cancelled mid-stream");
      }
      Response r;
      r.set_index(i);
      r.set_text(request->text());
      r.set_payload(request->payload());
      if (!writer->Write(r)) return absl::CancelledError("client went away");
    }
    if (request->status_code() != 0) {
      return absl::Status(static_cast<absl::StatusCode>(request->status_code()),
                          request->status_message());
    }
    return absl::OkStatus();
  }

  absl::Status ClientStream(ServerContext* ctx, ServerReader<Request>* reader,
                            Response* response) override {
    Request r;
    int n = 0;
    std::string text;
    while (reader->Read(&r)) {
      ++n;
      text += r.text();
      if (r.delay_ms() > 0) SleepUnlessCancelled(ctx, r.delay_ms());
    }
    if (ctx->IsCancelled()) return absl::CancelledError("cancelled");
    response->set_text(text);
    response->set_index(n);
    return absl::OkStatus();
  }

  absl::Status Bidi(ServerContext* ctx,
                    ServerReaderWriter<Response, Request>* stream) override {
    Request r;
    int n = 0;
    while (stream->Read(&r)) {
      if (r.status_code() != 0) {
        return absl::Status(static_cast<absl::StatusCode>(r.status_code()), r.status_message());
      }
      Response out;
      out.set_text(r.text());
      out.set_payload(r.payload());
      out.set_index(n++);
      if (!stream->Write(out)) return absl::CancelledError("client went away");
    }
    return absl::OkStatus();
  }

  absl::Status WaitForCancel(ServerContext* ctx, const Request* request,
                             Response* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_cancel_ = "waiting";
    }
    bool cancelled = !SleepUnlessCancelled(ctx, 10000);
    std::lock_guard<std::mutex> lock(mu_);
    if (!cancelled) {
      last_cancel_ = "not cancelled";
    } else {
      // The client also cancels when its own copy of the deadline passes, and
      // its CANCEL can arrive a moment before the server's copy (computed
      // when the call arrived, so slightly later) has passed: a cancellation
      // within 20 ms of the deadline counts as the deadline.
      last_cancel_ =
          absl::Now() + absl::Milliseconds(20) >= ctx->deadline() ? "deadline" : "cancelled";
    }
    return absl::CancelledError(last_cancel_);
  }

  absl::Status SetHealth(ServerContext* ctx, const Request* request, Response* response) override {
    HealthService* health = health_.load();
    if (health == nullptr) return absl::FailedPreconditionError("started without --health");
    health->SetServingStatus(request->text(), request->count() == 1);
    return absl::OkStatus();
  }
  void set_health(HealthService* health) { health_ = health; }

  absl::Status ServerMetrics(ServerContext* ctx, const google::protobuf::Empty* request,
                             Response* response) override {
    if (metrics_ == nullptr) return absl::FailedPreconditionError("started without --interceptors");
    std::string text;
    for (const auto& [method, m] : metrics_->Snapshot()) {
      absl::StrAppend(&text, method, " calls=", m.calls, " errors=", m.errors);
      for (const auto& [code, n] : m.by_code) {
        absl::StrAppend(&text, " ", absl::StatusCodeToString(code), "=", n);
      }
      absl::StrAppend(&text, " latency_count=", m.latency.total(), "\n");
    }
    response->set_text(text);
    return absl::OkStatus();
  }
  void set_metrics(std::shared_ptr<CallMetrics> metrics) { metrics_ = std::move(metrics); }

  absl::Status LastCancel(ServerContext* ctx, const google::protobuf::Empty* request,
                          Response* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    response->set_text(last_cancel_);
    return absl::OkStatus();
  }

  absl::Status Relay(ServerContext* ctx, const Request* request, Response* response) override {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(request->downstream());
    if (!channel.ok()) return channel.status();
    std::shared_ptr<TestService::Stub> stub = TestService::NewStub(*channel);
    std::unique_ptr<ClientContext> child = ClientContext::FromServerContext(*ctx);
    Request down;
    down.set_text(request->text());
    down.set_delay_ms(request->delay_ms());
    const std::string method = request->downstream_method();
    SetLastRelay("running");
    if (request->detach()) {
      std::lock_guard<std::mutex> lock(mu_);
      detached_.emplace_back([this, stub, method, down, child = std::move(child)]() mutable {
        Response r;
        absl::Status s = CallDownstream(*stub, method, child.get(), down, &r);
        child.reset();  // long after the server call (its parent) ended
        SetLastRelay(absl::StatusCodeToString(s.code()));
      });
      return absl::OkStatus();
    }
    absl::Status s = CallDownstream(*stub, method, child.get(), down, response);
    child.reset();  // before the server call ends
    SetLastRelay(absl::StatusCodeToString(s.code()));
    if (request->then_wait_for_cancel() && !SleepUnlessCancelled(ctx, 10000)) {
      return absl::CancelledError("cancelled after the downstream call");
    }
    return s;
  }

  absl::Status LastRelay(ServerContext* ctx, const google::protobuf::Empty* request,
                         Response* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    response->set_text(last_relay_);
    return absl::OkStatus();
  }

  absl::Status ReportDeadline(ServerContext* ctx, const Request* request,
                              Response* response) override {
    // The std::chrono accessor (grpcpp's ServerContext::deadline()).
    std::chrono::system_clock::time_point deadline = ctx->deadline_chrono();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      response->set_deadline_unix_micros(
          std::chrono::duration_cast<std::chrono::microseconds>(deadline.time_since_epoch())
              .count());
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status CallDownstream(TestService::Stub& stub, const std::string& method,
                                     ClientContext* ctx, const Request& request,
                                     Response* response) {
    if (method == "Echo") return stub.Echo(ctx, request, response);
    if (method == "WaitForCancel") return stub.WaitForCancel(ctx, request, response);
    if (method == "ReportDeadline") return stub.ReportDeadline(ctx, request, response);
    return absl::InvalidArgumentError("unknown downstream_method " + method);
  }
  void SetLastRelay(std::string outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    last_relay_ = std::move(outcome);
  }

  std::mutex mu_;  // std::mutex: visible to ThreadSanitizer, unlike Debian's Abseil
  std::string last_cancel_ = "none";
  std::string last_relay_ = "none";
  std::vector<std::thread> detached_;
  std::atomic<HealthService*> health_{nullptr};
  std::shared_ptr<CallMetrics> metrics_;  // set before the server starts
};

// Any method: echoes each message as it arrives. Client metadata "echo-*"
// comes back as "initial-*" / "trailing-*"; the trailing metadata "method"
// is the wire name called. Metadata "fail-code" (a number) and
// "fail-message" make the call end with that status after echoing.

// FdService (tests/e2e/fd_service.proto): descriptors both ways.
class FdServiceImpl final : public FdService::Service {
  absl::Status Open(ServerContext* ctx, const FdRequest* req, FdReply* reply) override {
    for (int i = 0; i < std::max(req->count(), 1); ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent(req->kind(), absl::StrCat(req->content(), i));
      if (!fd.ok()) return fd.status();
      FileDescriptor* field;
      if (i == 0) {
        field = reply->mutable_fd();
      } else if (req->spread() && i == 1) {
        field = reply->mutable_nested()->mutable_fd();
      } else if (req->spread() && i == 2) {
        field = &(*reply->mutable_named())["a"];
      } else {
        field = reply->add_fds();
      }
      AttachFd(ctx, field, std::move(*fd));
    }
    return absl::OkStatus();
  }

  absl::Status Read(ServerContext* ctx, const FdRequest* req, FdReply* reply) override {
    return ReadInto(ctx, *req, reply->mutable_content());
  }

  absl::Status OpenStream(ServerContext* ctx, const FdRequest* req,
                          ServerWriter<FdReply>* writer) override {
    for (int i = 0; i < req->count(); ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent(req->kind(), absl::StrCat(req->content(), i));
      if (!fd.ok()) return fd.status();
      FdReply reply;
      reply.set_index(i);
      SetFd(reply.mutable_fd(), fd->get());  // open until Write returns
      if (!writer->Write(reply)) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status ReadStream(ServerContext* ctx, ServerReader<FdRequest>* reader,
                          FdReply* reply) override {
    FdRequest req;
    while (reader->Read(&req)) {
      // A request with delay_ms makes the handler stop reading that long.
      if (req.delay_ms() > 0) SleepUnlessCancelled(ctx, req.delay_ms());
      IPCRPC_TEST_RETURN_IF_ERROR(ReadInto(ctx, req, reply->mutable_content()));
      reply->set_index(reply->index() + 1);
    }
    return absl::OkStatus();
  }

  absl::Status Bidi(ServerContext* ctx, ServerReaderWriter<FdReply, FdRequest>* stream) override {
    FdRequest req;
    int i = 0;
    while (stream->Read(&req)) {
      absl::StatusOr<ScopedFd> in = TakeFd(ctx, req.fd());
      if (!in.ok()) return in.status();
      absl::StatusOr<std::string> content = ReadAll(in->get());
      if (!content.ok()) return content.status();
      absl::StatusOr<ScopedFd> out = OpenWithContent("memfd", *content);
      if (!out.ok()) return out.status();
      FdReply reply;
      reply.set_index(i++);
      SetFd(reply.mutable_fd(), out->get());
      if (!stream->Write(reply)) break;
    }
    return absl::OkStatus();
  }

  absl::Status Peek(ServerContext*, const FdRequest* req, FdReply* reply) override {
    reply->set_content(absl::StrCat(PeekFd(req->fd())));
    return absl::OkStatus();
  }

  absl::Status Hold(ServerContext* ctx, const FdRequest* req, FdReply*) override {
    SleepUnlessCancelled(ctx, req->delay_ms());
    return absl::OkStatus();
  }

 private:
  // Reads every descriptor `req` names, in field order, appending
  // "|<content>" per descriptor to *out.
  static absl::Status ReadInto(ServerContext* ctx, const FdRequest& req, std::string* out) {
    std::vector<const FileDescriptor*> fields;
    if (req.has_fd()) fields.push_back(&req.fd());
    for (const FileDescriptor& fd : req.fds()) fields.push_back(&fd);
    if (req.nested().has_fd()) fields.push_back(&req.nested().fd());
    std::vector<std::string> keys;
    for (const auto& [key, fd] : req.named()) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) fields.push_back(&req.named().at(key));
    for (const Tree* tree = req.has_tree() ? &req.tree() : nullptr; tree != nullptr;
         tree = tree->branch().has_tree() ? &tree->branch().tree() : nullptr) {
      if (tree->has_fd()) fields.push_back(&tree->fd());
    }
    for (const Tree* tree = req.branch().has_tree() ? &req.branch().tree() : nullptr;
         tree != nullptr; tree = tree->branch().has_tree() ? &tree->branch().tree() : nullptr) {
      if (tree->has_fd()) fields.push_back(&tree->fd());
    }
    for (const FileDescriptor* field : fields) {
      absl::StatusOr<ScopedFd> fd = TakeFd(ctx, *field);
      if (!fd.ok()) return fd.status();
      absl::StatusOr<std::string> content = ReadAll(fd->get());
      if (!content.ok()) return content.status();
      absl::StrAppend(out, "|", *content);
    }
    return absl::OkStatus();
  }
};

class GenericEcho final : public GenericService {
 public:
  absl::Status HandleCall(ServerContext* ctx, GenericServerReaderWriter* stream) override {
    if (ctx->method() == "/ipcrpc.test.Probe/HalfClosed") return ReportHalfClose(stream);
    int fail_code = 0;
    std::string fail_message;
    for (const auto& [key, value] : ctx->client_metadata()) {
      if (absl::StartsWith(key, "echo-")) {
        ctx->AddInitialMetadata("initial-" + key.substr(5), value);
        ctx->AddTrailingMetadata("trailing-" + key.substr(5), value);
      } else if (key == "fail-code") {
        if (!absl::SimpleAtoi(value, &fail_code)) fail_code = 0;
      } else if (key == "fail-message") {
        fail_message = value;
      }
    }
    ctx->AddTrailingMetadata("method", std::string(ctx->method()));
    ByteBuffer message;
    while (stream->Read(&message)) {
      if (!stream->Write(message)) return absl::CancelledError("client went away");
    }
    if (ctx->IsCancelled()) return absl::CancelledError("cancelled");
    if (fail_code != 0) {
      return absl::Status(static_cast<absl::StatusCode>(fail_code), fail_message);
    }
    return absl::OkStatus();
  }

 private:
  // ServerReaderWriter::ClientHalfClosed as the handler sees it: "open" or
  // "closed N" (N requests not yet read) at the start and after each request
  // read; a request "wait" first waits (up to 10 s) until the client has
  // half-closed. The requests left are echoed as "rest X".
  static absl::Status ReportHalfClose(GenericServerReaderWriter* stream) {
    ByteBuffer message;
    for (;;) {
      size_t queued = 0;
      bool closed = stream->ClientHalfClosed(&queued);
      if (!stream->Write(ByteBuffer(closed ? absl::StrCat("closed ", queued) : "open"))) {
        return absl::CancelledError("client went away");
      }
      if (closed || !stream->Read(&message)) break;
      if (message.data() == "wait") {
        const absl::Time give_up = absl::Now() + absl::Seconds(10);
        while (!stream->ClientHalfClosed(&queued) && absl::Now() < give_up) {
          absl::SleepFor(absl::Milliseconds(1));
        }
      }
    }
    while (stream->Read(&message)) {
      if (!stream->Write(ByteBuffer(absl::StrCat("rest ", message.data())))) break;
    }
    return absl::OkStatus();
  }
};

// Any method: forwarded to another server as a bidi stream of bytes (whatever
// its kind), with the client's metadata and deadline; the upstream's
// metadata and status come back. Limitation (enough for the tests): if the
// upstream ends a call while the client keeps its side open without sending,
// the request thread waits in Read until the client half-closes or cancels
// (a handler cannot interrupt its own pending Read).
class GenericProxy final : public GenericService {
 public:
  explicit GenericProxy(std::shared_ptr<Channel> upstream) : stub_(std::move(upstream)) {}

  absl::Status HandleCall(ServerContext* ctx, GenericServerReaderWriter* stream) override {
    ClientContext upstream_ctx;
    upstream_ctx.set_deadline(ctx->deadline());
    for (const auto& [key, value] : ctx->client_metadata()) upstream_ctx.AddMetadata(key, value);
    std::unique_ptr<GenericClientReaderWriter> upstream =
        stub_.BidiStreamingCall(&upstream_ctx, ctx->method());
    // Requests go up on a second thread while this one brings responses down.
    std::thread requests([&] {
      ByteBuffer request;
      while (stream->Read(&request)) {
        if (!upstream->Write(request)) break;
      }
      if (ctx->IsCancelled()) {
        upstream_ctx.TryCancel();
      } else {
        upstream->WritesDone();
      }
    });
    ByteBuffer response;
    bool first = true;
    bool client_gone = false;
    while (upstream->Read(&response)) {
      if (first) {
        for (const auto& [key, value] : upstream_ctx.GetServerInitialMetadata()) {
          ctx->AddInitialMetadata(key, value);
        }
        first = false;
      }
      if (!stream->Write(response)) {
        client_gone = true;
        upstream_ctx.TryCancel();
        break;
      }
    }
    absl::Status status = upstream->Finish();
    requests.join();
    if (first) {
      for (const auto& [key, value] : upstream_ctx.GetServerInitialMetadata()) {
        ctx->AddInitialMetadata(key, value);
      }
    }
    for (const auto& [key, value] : upstream_ctx.GetServerTrailingMetadata()) {
      ctx->AddTrailingMetadata(key, value);
    }
    if (client_gone) return absl::CancelledError("client went away");
    return status;
  }

 private:
  GenericStub stub_;
};

// A pool describing a service no generated code knows, as a GenericService
// would serve (reflection's descriptor_pools / extra_services). The file
// imports descriptor.proto from the generated pool and extends
// MessageOptions, for the reflection tests' extension requests.
constexpr char kDynamicEchoFile[] = R"pb(
  name: "ipcrpc/test/dynamic_echo.proto"
  package: "ipcrpc.test.dynamic"
  dependency: "google/protobuf/descriptor.proto"
  syntax: "proto3"
  message_type {
    name: "Note"
    field { name: "text" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "text" }
  }
  extension {
    name: "note"
    extendee: ".google.protobuf.MessageOptions"
    number: 50001
    type: TYPE_STRING
    label: LABEL_OPTIONAL
  }
  service {
    name: "DynamicEcho"
    method { name: "Say" input_type: ".ipcrpc.test.dynamic.Note" output_type: ".ipcrpc.test.dynamic.Note" }
  }
)pb";

std::unique_ptr<google::protobuf::DescriptorPool> DynamicEchoPool() {
  auto pool = std::make_unique<google::protobuf::DescriptorPool>(
      google::protobuf::DescriptorPool::generated_pool());
  google::protobuf::FileDescriptorProto file;
  if (!google::protobuf::TextFormat::ParseFromString(kDynamicEchoFile, &file) ||
      pool->BuildFile(file) == nullptr) {
    return nullptr;
  }
  return pool;
}

std::atomic<bool> g_terminate{false};

// --nproc_headroom: root ignores RLIMIT_NPROC, so become another user too.
// The kernel counts every process and thread of a uid against RLIMIT_NPROC,
// so the uid is one no other process has (not "nobody", which other tests
// running at the same time use): a uid made from this process's pid.
bool LimitThreads(int headroom) {
  int threads = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "Threads: %d", &threads) == 1) break;
    }
    std::fclose(f);
  }
  const rlim_t limit = static_cast<rlim_t>(threads + headroom);
  struct rlimit rl = {limit, limit};
  const uid_t own = static_cast<uid_t>(3'000'000'000u + static_cast<unsigned>(::getpid()));
  if (threads == 0 || ::setrlimit(RLIMIT_NPROC, &rl) != 0 || ::setgroups(0, nullptr) != 0 ||
      ::setresgid(own, own, own) != 0 || ::setresuid(own, own, own) != 0) {
    std::perror("test_server: --nproc_headroom");
    return false;
  }
  std::fprintf(stderr, "test_server: uid %d, RLIMIT_NPROC %d (%d threads now)\n",
               static_cast<int>(::getuid()), static_cast<int>(limit), threads);
  return true;
}

int Main(int argc, char** argv) {
  std::string address;
  int grace_ms = 2000;
  bool generic_echo = false;
  bool health = false;
  bool reflection = false;
  std::string proxy_to;
  std::string grpc_listen;
  int nproc_headroom = -1;
  bool interceptors = false;
  bool callback = false;
  std::string log_calls_to;
  int64_t deny_uid = -1;
  ServerOptions server_options;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--grace_ms=")) {
      if (!absl::SimpleAtoi(arg, &grace_ms)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--max_fds=")) {
      int max_fds = 0;
      if (!absl::SimpleAtoi(arg, &max_fds)) return 2;
      struct rlimit rl = {static_cast<rlim_t>(max_fds), static_cast<rlim_t>(max_fds)};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        std::perror("test_server: --max_fds");
        return 1;
      }
    } else if (absl::ConsumePrefix(&arg, "--nproc_headroom=")) {
      if (!absl::SimpleAtoi(arg, &nproc_headroom)) return 2;
    } else if (arg == "--no_shared_buffers") {
      server_options.shared_buffers = false;
    } else if (absl::ConsumePrefix(&arg, "--shared_buffer_pool_bytes=")) {
      if (!absl::SimpleAtoi(arg, &server_options.shared_buffer_pool_bytes)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--shared_buffer_arena_bytes=")) {
      if (!absl::SimpleAtoi(arg, &server_options.shared_buffer_arena_bytes)) return 2;
    } else if (arg == "--compress") {
      server_options.default_compression_algorithm = CompressionAlgorithm::kGzip;
    } else if (arg == "--no_accept_compression") {
      server_options.accept_compression = false;
    } else if (arg == "--callback") {
      callback = true;
    } else if (arg == "--interceptors") {
      interceptors = true;
    } else if (absl::ConsumePrefix(&arg, "--log_calls_to=")) {
      log_calls_to = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--deny_uid=")) {
      if (!absl::SimpleAtoi(arg, &deny_uid)) return 2;
    } else if (arg == "--health") {
      health = true;
    } else if (arg == "--reflection") {
      reflection = true;
    } else if (arg == "--generic_echo") {
      generic_echo = true;
    } else if (absl::ConsumePrefix(&arg, "--grpc_listen=")) {
      grpc_listen = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--proxy_to=")) {
      proxy_to = std::string(arg);
    } else {
      address = std::string(arg);
    }
  }
  signal(SIGTERM, [](int) { g_terminate = true; });
  TestServiceImpl service;
  FdServiceImpl fd_service;
  SharedBufferServiceImpl shared_buffer_service;
  ServerBuilder builder;
  builder.SetOptions(server_options);
  // A proxy serves everything through its generic service.
  CallbackTestService callback_service;
  if (proxy_to.empty()) {
    if (callback) {
      builder.RegisterService(&callback_service);
    } else {
      builder.RegisterService(&service);
    }
    builder.RegisterService(&fd_service).RegisterService(&shared_buffer_service);
  }
  if (health) builder.EnableHealthService();
  std::unique_ptr<google::protobuf::DescriptorPool> dynamic_pool;
  if (reflection && generic_echo) {
    dynamic_pool = DynamicEchoPool();
    if (dynamic_pool == nullptr) return 1;
    ReflectionOptions options;
    options.descriptor_pools = {dynamic_pool.get()};
    options.extra_services = {"ipcrpc.test.dynamic.DynamicEcho"};
    builder.EnableReflection(options);
  } else if (reflection) {
    builder.EnableReflection();
  }
  std::vector<std::unique_ptr<experimental::ServerInterceptorFactoryInterface>> creators;
  if (deny_uid >= 0) {
    creators.push_back(std::make_unique<DenyUidInterceptorFactory>(static_cast<uid_t>(deny_uid)));
  }
  std::FILE* log_file = nullptr;
  if (interceptors) {
    auto metrics = std::make_shared<CallMetrics>();
    service.set_metrics(metrics);
    creators.push_back(ServerMetricsInterceptorFactory(metrics));
    creators.push_back(std::make_unique<TaggingInterceptorFactory>());
    if (!log_calls_to.empty()) {
      log_file = std::fopen(log_calls_to.c_str(), "a");
      if (log_file == nullptr) {
        std::perror("test_server: --log_calls_to");
        return 1;
      }
    }
    creators.push_back(std::make_unique<ServerLoggingInterceptorFactory>(
        log_file == nullptr ? LogSink()
                            : LogSink([log_file](const std::string& line) {
                                std::fprintf(log_file, "%s\n", line.c_str());
                                std::fflush(log_file);
                              })));
  }
  builder.experimental().SetInterceptorCreators(std::move(creators));
  GenericEcho echo;
  std::unique_ptr<GenericProxy> proxy;
  if (generic_echo) builder.RegisterGenericService(&echo);
  if (!proxy_to.empty()) {
    absl::StatusOr<std::shared_ptr<Channel>> upstream = CreateChannel(proxy_to);
    if (!upstream.ok()) {
      std::fprintf(stderr, "test_server: %s\n", upstream.status().ToString().c_str());
      return 1;
    }
    proxy = std::make_unique<GenericProxy>(*upstream);
    builder.RegisterGenericService(proxy.get());
  }
  if (address.empty()) {
    absl::StatusOr<std::unique_ptr<UnixSocketTransport>> socket = TakeInheritedSocket();
    absl::StatusOr<std::unique_ptr<Transport>> t =
        socket.ok() ? AcceptUpgrades(std::move(*socket)) : socket.status();
    if (!t.ok()) {
      std::fprintf(stderr, "test_server: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    builder.AddTransport(std::move(*t));
  } else {
    builder.AddListeningAddress(address);
  }
  absl::StatusOr<std::unique_ptr<Server>> server = builder.BuildAndStart();
  if (!server.ok()) {
    std::fprintf(stderr, "test_server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  service.set_health((*server)->health_service());
  std::thread waiter([&] {
    (*server)->Wait();
    g_terminate = true;
  });
  if (nproc_headroom >= 0 && !LimitThreads(nproc_headroom)) ::_exit(1);  // waiter runs
#ifdef IPCRPC_TEST_SERVER_GRPC_BRIDGE
  std::unique_ptr<grpc_bridge::GrpcBridge> bridge;
  if (!grpc_listen.empty()) {
    auto served = grpc_bridge::ServeOverGrpc(**server, grpc_listen,
                                             grpc::InsecureServerCredentials());
    if (!served.ok()) {
      std::fprintf(stderr, "test_server: %s\n", served.status().ToString().c_str());
      return 1;
    }
    bridge = std::move(*served);
    std::printf("GRPC_PORT=%d\n", bridge->port());
  }
#else
  if (!grpc_listen.empty()) {
    std::fprintf(stderr, "test_server: --grpc_listen needs bridge_test_server\n");
    return 2;
  }
#endif
  std::printf("READY\n");
  std::fflush(stdout);
  while (!g_terminate) absl::SleepFor(absl::Milliseconds(2));
#ifdef IPCRPC_TEST_SERVER_GRPC_BRIDGE
  if (bridge != nullptr) bridge->Shutdown(absl::Now() + absl::Milliseconds(grace_ms));
#endif
  (*server)->Shutdown(absl::Now() + absl::Milliseconds(grace_ms));
  waiter.join();
  return 0;
}

}  // namespace
}  // namespace ipcrpc::test

int main(int argc, char** argv) { return ipcrpc::test::Main(argc, argv); }
