// The server process of the end-to-end tests.
//
//   test_server unix:/path.sock [--grace_ms=N]   listen on an address
//   (spawned with an inherited socketpair)        serve that connection
//
// SIGTERM shuts the server down with a drain deadline of --grace_ms
// (default 2000). Prints "READY" on stdout once serving.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

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
      if (absl::StartsWith(key, "echo-")) {
        ctx->AddInitialMetadata("initial-" + key.substr(5), value);
        ctx->AddTrailingMetadata("trailing-" + key.substr(5), value);
      }
    }
    if (request->delay_ms() > 0 && !SleepUnlessCancelled(ctx, request->delay_ms())) {
      return absl::CancelledError("cancelled while sleeping");
    }
    if (request->status_code() != 0) {
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
};

std::atomic<bool> g_terminate{false};

int Main(int argc, char** argv) {
  std::string address;
  int grace_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--grace_ms=")) {
      if (!absl::SimpleAtoi(arg, &grace_ms)) return 2;
    } else {
      address = std::string(arg);
    }
  }
  signal(SIGTERM, [](int) { g_terminate = true; });
  TestServiceImpl service;
  ServerBuilder builder;
  builder.RegisterService(&service);
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
  std::printf("READY\n");
  std::fflush(stdout);
  std::thread waiter([&] {
    (*server)->Wait();
    g_terminate = true;
  });
  while (!g_terminate) absl::SleepFor(absl::Milliseconds(2));
  (*server)->Shutdown(absl::Now() + absl::Milliseconds(grace_ms));
  waiter.join();
  return 0;
}

}  // namespace
}  // namespace ipcrpc::test

int main(int argc, char** argv) { return ipcrpc::test::Main(argc, argv); }
