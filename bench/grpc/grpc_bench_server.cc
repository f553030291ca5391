// The gRPC side of the benchmark: gRPC C++ (Debian's 1.51), synchronous API,
// serving bench.proto's Bench service over a unix socket. Default server
// settings apart from the message size limit (raised so 1 MiB fits either way).
//
//   grpc_bench_server --address=unix:/tmp/x/grpc.sock [--cpu=N] [--stop_on_stdin_eof]
//
// Prints {"bench":"ready","pid":N} once listening; stops like
// ipcrpc_bench_server and removes its socket file.

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench/grpc/gen/bench.grpc.pb.h"
#include "bench/harness.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, address, "", "unix:PATH to listen on");
ABSL_FLAG(int, cpu, -1, "pin the server to this CPU (-1: do not pin)");
ABSL_FLAG(bool, stop_on_stdin_eof, false, "also stop when stdin reaches end of file");

namespace {

constexpr int kMaxMessageBytes = 16 << 20;

class BenchService final : public ipcrpc_bench::Bench::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const ipcrpc_bench::Payload* request,
                    ipcrpc_bench::Payload* response) override {
    response->set_data(request->data());
    return grpc::Status::OK;
  }

  grpc::Status Stream(grpc::ServerContext* context, const ipcrpc_bench::StreamRequest* request,
                      grpc::ServerWriter<ipcrpc_bench::Payload>* writer) override {
    ipcrpc_bench::Payload message;
    message.set_data(std::string(request->message_bytes(), '\x5a'));
    for (uint32_t i = 0; i < request->message_count(); ++i) {
      if (!writer->Write(message)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    }
    return grpc::Status::OK;
  }
};

absl::Status Serve() {
  std::string address = absl::GetFlag(FLAGS_address);
  if (!absl::StartsWith(address, "unix:")) {
    return absl::InvalidArgumentError("--address must be unix:PATH");
  }
  absl::Status pinned = bench::PinToCpu(absl::GetFlag(FLAGS_cpu));
  if (!pinned.ok()) return pinned;
  bench::BlockStopSignals();
  BenchService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return absl::UnavailableError(absl::StrCat("gRPC cannot listen on ", address));
  bench::JsonLine().Add("bench", "ready").Add("system", "grpc").Add("pid", int{getpid()}).Print();
  bench::WaitForStop(absl::GetFlag(FLAGS_stop_on_stdin_eof));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  std::remove(address.substr(5).c_str());  // gRPC leaves its socket file behind
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status status = Serve();
  if (!status.ok()) return bench::ReportFailure("grpc_bench_server", status);
  return 0;
}
