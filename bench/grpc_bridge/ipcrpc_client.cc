// An ipcrpc client (generated stub) timing 64 B unary Echo calls of
// tests/e2e/test_service.proto against ADDRESS — a local address, or
// grpc:HOST:PORT (the gRPC bridge is linked).
//
//   bridge_bench_ipcrpc_client NAME ADDRESS [CALLS]

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/grpc_bridge/latency.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bridge_bench_ipcrpc_client NAME ADDRESS [CALLS]\n");
    return 2;
  }
  int calls = argc > 3 ? std::atoi(argv[3]) : 5000;
  auto channel = ipcrpc::CreateChannel(argv[2]);
  if (!channel.ok()) {
    std::fprintf(stderr, "%s\n", channel.status().ToString().c_str());
    return 1;
  }
  auto stub = ipcrpc::test::TestService::NewStub(*channel);
  ipcrpc::test::Request request;
  request.set_payload(std::string(64, 'x'));
  ipcrpc::test::Response response;
  bool ok = bridge_bench::MeasureAndPrint(argv[1], calls / 10, calls, [&] {
    ipcrpc::ClientContext ctx;
    absl::Status s = stub->Echo(&ctx, request, &response);
    if (!s.ok()) std::fprintf(stderr, "%s: %s\n", argv[1], s.ToString().c_str());
    return s.ok();
  });
  return ok ? 0 : 1;
}
