// ipcrpc benchmarks: the client side shared by the ipcrpc and gRPC benchmarks.
//
// Both clients run the same measurements against a server of the Bench
// service (bench/bench.proto); only how a call is made differs, and that is
// what a BenchConnection supplies. The mode decides what is measured:
//
//   latency      unary Echo round trips per payload size (--sizes)
//   stream       server-streaming throughput per message size (--stream_sizes)
//   concurrent   aggregate Echo calls/s with 1, 4, 16 ... client threads
//                (--threads), each thread with its own connection
//   idle_memory  resident memory an idle connection costs the server
//                (--server_pid) and the client (--connections of them)
//
// Each result is one JSON line on stdout (bench/harness.h).
//
// Thread-safety: a BenchConnection is used by one thread at a time; the
// concurrent mode makes one per thread.
//
// Example (a client binary's main):
//   absl::ParseCommandLine(argc, argv);
//   bench::RpcClientConfig config = bench::RpcClientConfigFromFlags();
//   return bench::RunRpcClient("my_client", "mysystem", "unix", config,
//                              [&] { return MyConnection::Connect(config.address); });

#ifndef IPCRPC_BENCH_RPC_CLIENT_H_
#define IPCRPC_BENCH_RPC_CLIENT_H_

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/harness.h"

namespace bench {

// One connection to a Bench server.
class BenchConnection {
 public:
  virtual ~BenchConnection() = default;
  // One Echo call whose request carries `size` payload bytes (the request is
  // built once per size and reused); fails unless the reply is as long.
  virtual absl::Status Echo(size_t size) = 0;
  // One Stream call: receives `count` messages of `size` bytes each; fails
  // unless exactly that arrived.
  virtual absl::Status Stream(size_t size, int count) = 0;
};

// Makes a new connection (its own, not shared with earlier ones) and makes
// sure it is connected.
using ConnectFn = std::function<absl::StatusOr<std::unique_ptr<BenchConnection>>()>;

struct RpcClientConfig {
  std::string address;
  std::string mode;
  int cpu = -1;
  std::vector<size_t> sizes;
  std::vector<size_t> stream_sizes;
  std::vector<int> threads;
  LatencyOptions latency;
  StreamOptions stream;
  absl::Duration concurrent_time;
  int connections = 0;
  pid_t server_pid = 0;
};

// Reads the --flags this library defines (see rpc_client.cc).
absl::StatusOr<RpcClientConfig> RpcClientConfigFromFlags();

// Runs config.mode and prints its JSON lines, each tagged with `system` and
// `transport`. Returns main()'s exit code.
int RunRpcClient(absl::string_view program, absl::string_view system,
                 absl::string_view transport, const RpcClientConfig& config,
                 const ConnectFn& connect);

}  // namespace bench

#endif  // IPCRPC_BENCH_RPC_CLIENT_H_
