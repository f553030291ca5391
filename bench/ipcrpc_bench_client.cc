// The ipcrpc side of the benchmark: a client of bench.proto's Bench service.
//
//   ipcrpc_bench_client --address=TRANSPORT:/tmp/x/bench.sock --mode=MODE [flags]
//
// MODE is one of bench/rpc_client.h's modes, or `transports`: one line per
// transport name ipcrpc knows, saying whether this build has it (bench/run.py
// benchmarks exactly those). The address's TRANSPORT selects the transport
// (connect/address.h); IPCRPC_TRANSPORT and IPCRPC_CONFIG are ignored,
// so the environment cannot change what is measured.

#include <memory>
#include <string>

#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/bench.ipcrpc.pb.h"
#include "bench/harness.h"
#include "bench/rpc_client.h"
#include "connect/address.h"
#include "runtime/ipcrpc.h"

namespace {

class IpcrpcConnection final : public bench::BenchConnection {
 public:
  static absl::StatusOr<std::unique_ptr<bench::BenchConnection>> Connect(
      const std::string& address) {
    IPCRPC_ASSIGN_OR_RETURN(std::shared_ptr<ipcrpc::Channel> channel,
                            ipcrpc::CreateChannel(address, {}, ipcrpc::config::Config()));
    auto connection = std::make_unique<IpcrpcConnection>(std::move(channel));
    IPCRPC_RETURN_IF_ERROR(connection->Echo(1));  // connects
    return std::unique_ptr<bench::BenchConnection>(std::move(connection));
  }

  explicit IpcrpcConnection(std::shared_ptr<ipcrpc::Channel> channel)
      : stub_(std::move(channel)) {}

  absl::Status Echo(size_t size) override {
    if (request_.data().size() != size) request_.set_data(bench::MakePayload(size));
    ipcrpc::ClientContext context;
    IPCRPC_RETURN_IF_ERROR(stub_.Echo(&context, request_, &response_));
    if (response_.data().size() != size) {
      return absl::DataLossError(
          absl::StrCat("Echo: sent ", size, " bytes, got ", response_.data().size(), " back"));
    }
    return absl::OkStatus();
  }

  absl::Status Stream(size_t size, int count) override {
    ipcrpc::ClientContext context;
    ipcrpc_bench::StreamRequest request;
    request.set_message_bytes(static_cast<uint32_t>(size));
    request.set_message_count(static_cast<uint32_t>(count));
    auto reader = stub_.Stream(&context, request);
    int received = 0;
    bool sizes_ok = true;
    while (reader->Read(&response_)) {
      sizes_ok = sizes_ok && response_.data().size() == size;
      ++received;
    }
    IPCRPC_RETURN_IF_ERROR(reader->Finish());
    if (received != count || !sizes_ok) {
      return absl::DataLossError(absl::StrCat("Stream: asked for ", count, " messages of ", size,
                                              " bytes, got ", received, " (sizes ok: ", sizes_ok,
                                              ")"));
    }
    return absl::OkStatus();
  }

 private:
  ipcrpc_bench::Bench::Stub stub_;
  ipcrpc_bench::Payload request_;
  ipcrpc_bench::Payload response_;
};

// One line per transport name (but "auto"): in this build or not, and why.
void ListTransports(const std::string& address) {
  std::string socket = address.substr(address.find(':') + 1);
  for (const std::string& transport : ipcrpc::KnownTransports()) {
    if (transport == "auto") continue;
    auto connector = ipcrpc::MakeConnector(absl::StrCat(transport, ":", socket));
    bench::JsonLine line;
    line.Add("bench", "transport").Add("system", "ipcrpc").Add("transport", transport);
    line.Add("available", connector.ok() ? 1 : 0);
    if (!connector.ok()) line.Add("reason", connector.status().message());
    line.Print();
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<bench::RpcClientConfig> config = bench::RpcClientConfigFromFlags();
  if (!config.ok()) return bench::ReportFailure("ipcrpc_bench_client", config.status());
  if (config->mode == "transports") {
    ListTransports(config->address);
    return 0;
  }
  absl::StatusOr<ipcrpc::ParsedAddress> parsed = ipcrpc::ParseAddress(config->address);
  if (!parsed.ok()) return bench::ReportFailure("ipcrpc_bench_client", parsed.status());
  return bench::RunRpcClient("ipcrpc_bench_client", "ipcrpc", parsed->transport, *config,
                             [&] { return IpcrpcConnection::Connect(config->address); });
}
