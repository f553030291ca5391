#include "bench/rpc_client.h"

#include <atomic>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

ABSL_FLAG(std::string, address, "", "server address, e.g. unix:/tmp/x.sock or shm:/tmp/x.sock");
ABSL_FLAG(std::string, mode, "latency", "latency | stream | concurrent | idle_memory");
ABSL_FLAG(int, cpu, -1, "pin the client to this CPU (-1: do not pin)");
ABSL_FLAG(std::string, sizes, "64,4096,65536,1048576", "latency: payload sizes, bytes");
ABSL_FLAG(int, warmup, 200, "latency: round trips before recording");
ABSL_FLAG(int, iterations, 20000, "latency: most round trips recorded per size");
ABSL_FLAG(int, max_ms, 1000, "latency: time budget per size, milliseconds");
ABSL_FLAG(std::string, stream_sizes, "4096,1048576", "stream: message sizes, bytes");
ABSL_FLAG(int, stream_ms, 500, "stream: length of the timed stream, milliseconds");
ABSL_FLAG(int, stream_warmup, 20, "stream: messages in the untimed first stream");
ABSL_FLAG(std::string, threads, "1,4,16", "concurrent: client thread counts");
ABSL_FLAG(int, concurrent_ms, 1000, "concurrent: time per thread count, milliseconds");
ABSL_FLAG(int, connections, 32, "idle_memory: idle connections to open");
ABSL_FLAG(int, server_pid, 0, "idle_memory: the server's pid (to read its VmRSS)");

namespace bench {
namespace {

constexpr size_t kConcurrentPayload = 64;

absl::StatusOr<std::vector<int>> ParseCounts(absl::string_view list) {
  std::vector<int> counts;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(item, &n) || n < 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad count \"", item, "\""));
    }
    counts.push_back(n);
  }
  if (counts.empty()) return absl::InvalidArgumentError("no thread counts given");
  return counts;
}

class Runner {
 public:
  Runner(absl::string_view system, absl::string_view transport, const RpcClientConfig& config,
         const ConnectFn& connect)
      : system_(system), transport_(transport), config_(config), connect_(connect) {}

  absl::Status Run() {
    if (config_.mode == "latency") return Latency();
    if (config_.mode == "stream") return Stream();
    if (config_.mode == "concurrent") return Concurrent();
    if (config_.mode == "idle_memory") return IdleMemory();
    return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", config_.mode));
  }

 private:
  JsonLine Line(absl::string_view bench) const {
    JsonLine line;
    line.Add("bench", bench).Add("system", system_).Add("transport", transport_);
    return line;
  }

  absl::Status Latency() {
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<BenchConnection> connection, connect_());
    for (size_t size : config_.sizes) {
      IPCRPC_ASSIGN_OR_RETURN(
          LatencySummary summary,
          MeasureLatency(config_.latency, [&] { return connection->Echo(size); }));
      Line("latency").Add("size", size).Add(summary).Print();
    }
    return absl::OkStatus();
  }

  absl::Status Stream() {
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<BenchConnection> connection, connect_());
    for (size_t size : config_.stream_sizes) {
      IPCRPC_ASSIGN_OR_RETURN(
          StreamSummary summary,
          MeasureStream(config_.stream, size,
                        [&](int count) { return connection->Stream(size, count); }));
      Line("stream").Add("size", size).Add(summary).Print();
    }
    return absl::OkStatus();
  }

  // `threads` threads, each with its own connection, call Echo as fast as
  // they can for concurrent_time, all starting together.
  absl::Status ConcurrentOnce(int threads) {
    std::vector<std::unique_ptr<BenchConnection>> connections;
    for (int i = 0; i < threads; ++i) {
      IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<BenchConnection> c, connect_());
      for (int warm = 0; warm < 10; ++warm) {
        absl::Status status = c->Echo(kConcurrentPayload);
        if (!status.ok()) return status;
      }
      connections.push_back(std::move(c));
    }
    std::atomic<bool> stop{false};
    std::atomic<int64_t> calls{0};
    absl::Mutex mu;
    absl::Status first_error;
    // Deleted by whichever thread passes it last (Block() returns true once).
    absl::Barrier* start = new absl::Barrier(threads + 1);
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; ++i) {
      workers.emplace_back([&, i] {
        if (start->Block()) delete start;
        int64_t mine = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          absl::Status status = connections[i]->Echo(kConcurrentPayload);
          if (!status.ok()) {
            absl::MutexLock lock(&mu);
            if (first_error.ok()) first_error = status;
            stop = true;
            break;
          }
          ++mine;
        }
        calls += mine;
      });
    }
    if (start->Block()) delete start;
    int64_t begin = NowNanos();
    absl::SleepFor(config_.concurrent_time);
    stop = true;
    for (std::thread& t : workers) t.join();
    double seconds = static_cast<double>(NowNanos() - begin) / 1e9;
    if (!first_error.ok()) return first_error;
    Line("concurrent")
        .Add("threads", threads)
        .Add("size", kConcurrentPayload)
        .Add("calls", calls.load())
        .Add("seconds", seconds)
        .Add("calls_per_s", calls.load() / seconds)
        .Print();
    return absl::OkStatus();
  }

  absl::Status Concurrent() {
    for (int threads : config_.threads) {
      IPCRPC_RETURN_IF_ERROR(ConcurrentOnce(threads));
    }
    return absl::OkStatus();
  }

  // The server's and this process's VmRSS with one connection in use, then
  // with `connections` more, each connected by one 64-byte call and idle.
  absl::Status IdleMemory() {
    if (config_.server_pid <= 0) return absl::InvalidArgumentError("idle_memory needs --server_pid");
    if (config_.connections < 1) return absl::InvalidArgumentError("--connections must be >= 1");
    const absl::Duration settle = absl::Milliseconds(200);
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<BenchConnection> first, connect_());
    IPCRPC_RETURN_IF_ERROR(first->Echo(kConcurrentPayload));
    absl::SleepFor(settle);
    IPCRPC_ASSIGN_OR_RETURN(int64_t server_before, ResidentKib(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int64_t client_before, ResidentKib());
    IPCRPC_ASSIGN_OR_RETURN(int server_threads_before, ThreadCount(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int server_fds_before, FdCount(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int client_fds_before, FdCount());
    std::vector<std::unique_ptr<BenchConnection>> idle;
    for (int i = 0; i < config_.connections; ++i) {
      IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<BenchConnection> c, connect_());
      IPCRPC_RETURN_IF_ERROR(c->Echo(kConcurrentPayload));
      idle.push_back(std::move(c));
    }
    absl::SleepFor(settle);
    IPCRPC_ASSIGN_OR_RETURN(int64_t server_after, ResidentKib(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int64_t client_after, ResidentKib());
    IPCRPC_ASSIGN_OR_RETURN(int server_threads_after, ThreadCount(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int server_fds_after, FdCount(config_.server_pid));
    IPCRPC_ASSIGN_OR_RETURN(int client_fds_after, FdCount());
    double n = config_.connections;
    Line("idle_memory")
        .Add("connections", config_.connections)
        .Add("server_rss_kib", server_before)
        .Add("client_rss_kib", client_before)
        .Add("server_kib_per_conn", (server_after - server_before) / n)
        .Add("client_kib_per_conn", (client_after - client_before) / n)
        .Add("server_threads_before", server_threads_before)
        .Add("server_threads_per_conn", (server_threads_after - server_threads_before) / n)
        .Add("server_fds_per_conn", (server_fds_after - server_fds_before) / n)
        .Add("client_fds_per_conn", (client_fds_after - client_fds_before) / n)
        .Print();
    return absl::OkStatus();
  }

  std::string system_;
  std::string transport_;
  const RpcClientConfig& config_;
  const ConnectFn& connect_;
};

}  // namespace

absl::StatusOr<RpcClientConfig> RpcClientConfigFromFlags() {
  RpcClientConfig config;
  config.address = absl::GetFlag(FLAGS_address);
  if (config.address.empty()) return absl::InvalidArgumentError("--address is required");
  config.mode = absl::GetFlag(FLAGS_mode);
  config.cpu = absl::GetFlag(FLAGS_cpu);
  IPCRPC_ASSIGN_OR_RETURN(config.sizes, ParseSizes(absl::GetFlag(FLAGS_sizes)));
  IPCRPC_ASSIGN_OR_RETURN(config.stream_sizes,
                                ParseSizes(absl::GetFlag(FLAGS_stream_sizes)));
  IPCRPC_ASSIGN_OR_RETURN(config.threads, ParseCounts(absl::GetFlag(FLAGS_threads)));
  config.latency.warmup = absl::GetFlag(FLAGS_warmup);
  config.latency.iterations = absl::GetFlag(FLAGS_iterations);
  config.latency.max_time = absl::Milliseconds(absl::GetFlag(FLAGS_max_ms));
  config.stream.target_time = absl::Milliseconds(absl::GetFlag(FLAGS_stream_ms));
  config.stream.min_messages = absl::GetFlag(FLAGS_stream_warmup);
  config.concurrent_time = absl::Milliseconds(absl::GetFlag(FLAGS_concurrent_ms));
  config.connections = absl::GetFlag(FLAGS_connections);
  config.server_pid = absl::GetFlag(FLAGS_server_pid);
  if (config.latency.iterations < 1 || config.latency.warmup < 0) {
    return absl::InvalidArgumentError("--iterations must be >= 1 and --warmup >= 0");
  }
  return config;
}

int RunRpcClient(absl::string_view program, absl::string_view system,
                 absl::string_view transport, const RpcClientConfig& config,
                 const ConnectFn& connect) {
  absl::Status status = PinToCpu(config.cpu);
  if (status.ok()) status = Runner(system, transport, config, connect).Run();
  if (!status.ok()) return ReportFailure(program, status);
  return 0;
}

}  // namespace bench
