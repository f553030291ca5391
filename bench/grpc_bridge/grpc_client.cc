// A grpc++ client (generated synchronous stub) timing 64 B unary Echo calls
// of tests/e2e/test_service.proto against TARGET (host:port).
//
//   bridge_bench_grpc_client NAME TARGET [CALLS]

#include <cstdio>
#include <cstdlib>
#include <string>

#include <grpcpp/grpcpp.h>

#include "bench/grpc_bridge/latency.h"
#include "tests/bridge/gen/test_service.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bridge_bench_grpc_client NAME HOST:PORT [CALLS]\n");
    return 2;
  }
  int calls = argc > 3 ? std::atoi(argv[3]) : 5000;
  auto stub = ipcrpc::test::TestService::NewStub(
      grpc::CreateChannel(argv[2], grpc::InsecureChannelCredentials()));
  ipcrpc::test::Request request;
  request.set_payload(std::string(64, 'x'));
  ipcrpc::test::Response response;
  bool ok = bridge_bench::MeasureAndPrint(argv[1], calls / 10, calls, [&] {
    grpc::ClientContext ctx;
    grpc::Status s = stub->Echo(&ctx, request, &response);
    if (!s.ok()) std::fprintf(stderr, "%s: %s\n", argv[1], s.error_message().c_str());
    return s.ok();
  });
  return ok ? 0 : 1;
}
