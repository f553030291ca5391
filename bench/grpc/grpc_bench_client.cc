// The gRPC side of the benchmark: a gRPC C++ (1.51) synchronous client of
// bench.proto's Bench service over a unix socket, running the same
// measurements as ipcrpc_bench_client (bench/rpc_client.h).
//
//   grpc_bench_client --address=unix:/tmp/x/grpc.sock --mode=MODE [flags]
//
// Every connection is a channel of its own with a local subchannel pool, so
// each really is a separate connection (gRPC otherwise shares one between
// channels to the same address).

#include <memory>
#include <string>

#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/grpc/gen/bench.grpc.pb.h"
#include "bench/harness.h"
#include "bench/rpc_client.h"
#include "grpcpp/grpcpp.h"

namespace {

constexpr int kMaxMessageBytes = 16 << 20;

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("gRPC: ", status.error_message()));
}

class GrpcConnection final : public bench::BenchConnection {
 public:
  static absl::StatusOr<std::unique_ptr<bench::BenchConnection>> Connect(
      const std::string& address) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(kMaxMessageBytes);
    args.SetMaxSendMessageSize(kMaxMessageBytes);
    auto connection = std::make_unique<GrpcConnection>(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    absl::Status status = connection->Echo(1);  // connects
    if (!status.ok()) return status;
    return std::unique_ptr<bench::BenchConnection>(std::move(connection));
  }

  explicit GrpcConnection(std::shared_ptr<grpc::Channel> channel)
      : stub_(ipcrpc_bench::Bench::NewStub(std::move(channel))) {}

  absl::Status Echo(size_t size) override {
    if (request_.data().size() != size) request_.set_data(bench::MakePayload(size));
    grpc::ClientContext context;
    absl::Status status = FromGrpc(stub_->Echo(&context, request_, &response_));
    if (!status.ok()) return status;
    if (response_.data().size() != size) {
      return absl::DataLossError(
          absl::StrCat("Echo: sent ", size, " bytes, got ", response_.data().size(), " back"));
    }
    return absl::OkStatus();
  }

  absl::Status Stream(size_t size, int count) override {
    grpc::ClientContext context;
    ipcrpc_bench::StreamRequest request;
    request.set_message_bytes(static_cast<uint32_t>(size));
    request.set_message_count(static_cast<uint32_t>(count));
    std::unique_ptr<grpc::ClientReader<ipcrpc_bench::Payload>> reader =
        stub_->Stream(&context, request);
    int received = 0;
    bool sizes_ok = true;
    while (reader->Read(&response_)) {
      sizes_ok = sizes_ok && response_.data().size() == size;
      ++received;
    }
    absl::Status status = FromGrpc(reader->Finish());
    if (!status.ok()) return status;
    if (received != count || !sizes_ok) {
      return absl::DataLossError(absl::StrCat("Stream: asked for ", count, " messages of ", size,
                                              " bytes, got ", received, " (sizes ok: ", sizes_ok,
                                              ")"));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<ipcrpc_bench::Bench::Stub> stub_;
  ipcrpc_bench::Payload request_;
  ipcrpc_bench::Payload response_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<bench::RpcClientConfig> config = bench::RpcClientConfigFromFlags();
  if (!config.ok()) return bench::ReportFailure("grpc_bench_client", config.status());
  return bench::RunRpcClient("grpc_bench_client", "grpc", "unix", *config,
                             [&] { return GrpcConnection::Connect(config->address); });
}
