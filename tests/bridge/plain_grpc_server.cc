// A plain grpc++ server (Debian's gRPC 1.51, code from grpc_cpp_plugin) of
// tests/e2e/test_service.proto, with no ipcrpc in it: what an ipcrpc stub
// reaches through a "grpc:" address and ipcrpc_gateway's --listen direction.
//
//   plain_grpc_server [--listen=127.0.0.1:0]
//
// Prints "GRPC_PORT=N" and "READY"; SIGTERM ends it. Behaves as
// tests/e2e/test_server's TestService where the tests need it: Echo (client
// metadata "echo-*" back as "initial-*" / "trailing-*"; status_code /
// status_message, with the client's "details-bin" as the status's details;
// delay_ms), ServerStream (count responses of payload, delay_ms apart),
// ClientStream, Bidi (client metadata "greet-first: X": a response "X"
// before any request), WaitForCancel / LastCancel, ReportDeadline.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "tests/bridge/gen/test_service.grpc.pb.h"

namespace {

using ipcrpc::test::Request;
using ipcrpc::test::Response;

bool SleepUnlessCancelled(grpc::ServerContext* ctx, int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (ctx->IsCancelled()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return !ctx->IsCancelled();
}

class PlainService final : public ipcrpc::test::TestService::Service {
  grpc::Status Echo(grpc::ServerContext* ctx, const Request* request,
                    Response* response) override {
    std::string details;
    for (const auto& [key, value] : ctx->client_metadata()) {
      std::string k(key.data(), key.size()), v(value.data(), value.size());
      if (k.rfind("echo-", 0) == 0) {
        ctx->AddInitialMetadata("initial-" + k.substr(5), v);
        ctx->AddTrailingMetadata("trailing-" + k.substr(5), v);
      } else if (k == "details-bin") {
        details = v;
      }
    }
    if (request->delay_ms() > 0 && !SleepUnlessCancelled(ctx, request->delay_ms())) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled while sleeping");
    }
    if (request->status_code() != 0) {
      return grpc::Status(static_cast<grpc::StatusCode>(request->status_code()),
                          request->status_message(), details);
    }
    response->set_text(request->text());
    response->set_payload(request->payload());
    return grpc::Status::OK;
  }

  grpc::Status ServerStream(grpc::ServerContext* ctx, const Request* request,
                            grpc::ServerWriter<Response>* writer) override {
    for (int i = 0; i < request->count(); ++i) {
      if (request->delay_ms() > 0 && !SleepUnlessCancelled(ctx, request->delay_ms())) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled mid-stream");
      }
      Response r;
      r.set_index(i);
      r.set_text(request->text());
      r.set_payload(request->payload());
      if (!writer->Write(r)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (request->status_code() != 0) {
      return grpc::Status(static_cast<grpc::StatusCode>(request->status_code()),
                          request->status_message());
    }
    return grpc::Status::OK;
  }

  grpc::Status ClientStream(grpc::ServerContext* ctx, grpc::ServerReader<Request>* reader,
                            Response* response) override {
    Request r;
    int n = 0;
    std::string text;
    while (reader->Read(&r)) {
      ++n;
      text += r.text();
    }
    response->set_text(text);
    response->set_index(n);
    return grpc::Status::OK;
  }

  grpc::Status Bidi(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<Response, Request>* stream) override {
    Request r;
    int n = 0;
    // A greeting before any request, if the client asks for one.
    auto greet = ctx->client_metadata().find("greet-first");
    if (greet != ctx->client_metadata().end()) {
      Response hello;
      hello.set_text(std::string(greet->second.data(), greet->second.size()));
      if (!stream->Write(hello)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    while (stream->Read(&r)) {
      if (r.status_code() != 0) {
        return grpc::Status(static_cast<grpc::StatusCode>(r.status_code()), r.status_message());
      }
      Response out;
      out.set_text(r.text());
      out.set_payload(r.payload());
      out.set_index(n++);
      if (!stream->Write(out)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    return grpc::Status::OK;
  }

  grpc::Status WaitForCancel(grpc::ServerContext* ctx, const Request* request,
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
      // As test_server: a cancellation within 20 ms of the deadline is the deadline.
      last_cancel_ = std::chrono::system_clock::now() + std::chrono::milliseconds(20) >=
                             ctx->deadline()
                         ? "deadline"
                         : "cancelled";
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, last_cancel_);
  }

  grpc::Status LastCancel(grpc::ServerContext* ctx, const google::protobuf::Empty* request,
                          Response* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    response->set_text(last_cancel_);
    return grpc::Status::OK;
  }

  grpc::Status ReportDeadline(grpc::ServerContext* ctx, const Request* request,
                              Response* response) override {
    auto deadline = ctx->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      response->set_deadline_unix_micros(
          std::chrono::duration_cast<std::chrono::microseconds>(deadline.time_since_epoch())
              .count());
    }
    return grpc::Status::OK;
  }

  std::mutex mu_;
  std::string last_cancel_ = "none";
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--listen=", 0) == 0) {
      listen = arg.substr(9);
    } else {
      std::fprintf(stderr, "usage: plain_grpc_server [--listen=HOST:PORT]\n");
      return 2;
    }
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  PlainService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "plain_grpc_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("GRPC_PORT=%d\nREADY\n", port);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
