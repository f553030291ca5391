// The ipcrpc side of the benchmark: a server of bench.proto's Bench service.
//
//   ipcrpc_bench_server --address=unix:/tmp/x/bench.sock [--cpu=N] [--stop_on_stdin_eof]
//
// Listens on the address's unix socket and accepts every transport of the
// build (clients choose: shm:/tmp/x/bench.sock, fifo:..., see
// connect/address.h). Prints {"bench":"ready","pid":N} once listening;
// stops on SIGINT/SIGTERM/SIGHUP (or when stdin closes, with
// --stop_on_stdin_eof), removing its socket.

#include <unistd.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "bench/bench.ipcrpc.pb.h"
#include "bench/harness.h"
#include "runtime/ipcrpc.h"

ABSL_FLAG(std::string, address, "", "address to listen on, e.g. unix:/tmp/x.sock");
ABSL_FLAG(int, cpu, -1, "pin the server to this CPU (-1: do not pin)");
ABSL_FLAG(bool, stop_on_stdin_eof, false, "also stop when stdin reaches end of file");
ABSL_FLAG(int, max_connections, 0,
          "ServerOptions::max_connections and max_connections_per_uid (0: the defaults)");

namespace {

class BenchService final : public ipcrpc_bench::Bench::Service {
 public:
  absl::Status Echo(ipcrpc::ServerContext* context, const ipcrpc_bench::Payload* request,
                    ipcrpc_bench::Payload* response) override {
    response->set_data(request->data());
    return absl::OkStatus();
  }

  absl::Status Stream(ipcrpc::ServerContext* context, const ipcrpc_bench::StreamRequest* request,
                      ipcrpc::ServerWriter<ipcrpc_bench::Payload>* writer) override {
    ipcrpc_bench::Payload message;
    message.set_data(std::string(request->message_bytes(), '\x5a'));
    for (uint32_t i = 0; i < request->message_count(); ++i) {
      if (!writer->Write(message)) return absl::CancelledError("the client went away");
    }
    return absl::OkStatus();
  }
};

absl::Status Serve() {
  std::string address = absl::GetFlag(FLAGS_address);
  if (address.empty()) return absl::InvalidArgumentError("--address is required");
  IPCRPC_RETURN_IF_ERROR(bench::PinToCpu(absl::GetFlag(FLAGS_cpu)));
  bench::BlockStopSignals();
  BenchService service;
  ipcrpc::ServerBuilder builder;
  // An empty configuration: IPCRPC_CONFIG must not change what is measured.
  builder.AddListeningAddress(address).RegisterService(&service).SetConfig(
      ipcrpc::config::ServerConfig());
  if (int max = absl::GetFlag(FLAGS_max_connections); max > 0) {
    ipcrpc::ServerOptions options;
    options.max_connections = options.max_connections_per_uid = static_cast<size_t>(max);
    builder.SetOptions(options);
  }
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::Server> server, builder.BuildAndStart());
  bench::JsonLine().Add("bench", "ready").Add("system", "ipcrpc").Add("pid", int{getpid()}).Print();
  bench::WaitForStop(absl::GetFlag(FLAGS_stop_on_stdin_eof));
  server->Shutdown(absl::Now() + absl::Seconds(1));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status status = Serve();
  if (!status.ok()) return bench::ReportFailure("ipcrpc_bench_server", status);
  return 0;
}
