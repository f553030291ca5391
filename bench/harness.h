// ipcrpc benchmarks: what every benchmark binary shares.
//
// The measurement loops (round-trip latency, one-way streaming throughput),
// CPU pinning, resident-memory reads, and the one output format: one JSON
// object per line on stdout, which bench/run.py collects. Nothing here knows
// ipcrpc, gRPC or any IPC mechanism; each binary passes in what one round trip
// or one stream is.
//
// Timing is CLOCK_MONOTONIC around each round trip; percentiles are taken
// from the sorted samples (nearest rank).
//
// Thread-safety: free functions and value types; MeasureLatency and
// MeasureStream call their callbacks from the calling thread only.
//
// Example:
//   bench::LatencyOptions options;  // warm-up, iterations, time budget
//   auto summary = bench::MeasureLatency(options, [&] { return stub.Echo(...); });
//   bench::JsonLine().Add("bench", "latency").Add(*summary).Print();

#ifndef IPCRPC_BENCH_HARNESS_H_
#define IPCRPC_BENCH_HARNESS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bench {

// Nanoseconds on CLOCK_MONOTONIC.
int64_t NowNanos();

// Pins the calling thread (and so every thread it creates later) to `cpu`.
// cpu < 0 leaves the affinity alone. Call before starting any thread.
absl::Status PinToCpu(int cpu);

// The resident set size of process `pid` (0: this process), KiB, from
// /proc/PID/status (VmRSS).
absl::StatusOr<int64_t> ResidentKib(pid_t pid = 0);
// Threads of `pid` (0: this process), from /proc/PID/status.
absl::StatusOr<int> ThreadCount(pid_t pid = 0);
// Open file descriptors of `pid` (0: this process): entries of /proc/PID/fd.
absl::StatusOr<int> FdCount(pid_t pid = 0);

// `size` bytes of pseudo-random data (deterministic).
std::string MakePayload(size_t size);

// "64,4096,65536,1048576" -> sizes; INVALID_ARGUMENT on anything else.
absl::StatusOr<std::vector<size_t>> ParseSizes(absl::string_view list);

struct LatencyOptions {
  int warmup = 200;           // round trips run first and not recorded
  int iterations = 20000;     // most round trips recorded
  absl::Duration max_time = absl::Seconds(1);  // stop recording after this
  // Round trips between two calls of `prepare` (see MeasureLatency).
  int batch = 64;
};

struct LatencySummary {
  int64_t samples = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, min_us = 0, max_us = 0, mean_us = 0;
};

// Times `round_trip` (warm-up first, then until `iterations` or `max_time`).
// `prepare(n)`, if given, runs untimed before every n round trips (the raw
// benchmarks tell their server how many to expect); the time budget is
// checked between batches, so a started batch always completes.
absl::StatusOr<LatencySummary> MeasureLatency(
    const LatencyOptions& options, const std::function<absl::Status()>& round_trip,
    const std::function<absl::Status(int)>& prepare = nullptr);

struct StreamOptions {
  absl::Duration target_time = absl::Milliseconds(500);  // length of the timed stream
  int min_messages = 20;
  int max_messages = 1000000;
};

struct StreamSummary {
  int64_t messages = 0;
  int64_t message_bytes = 0;
  double seconds = 0;
  double messages_per_s = 0;
  double mb_per_s = 0;  // 10^6 bytes per second, payload bytes only
};

// `stream(n)` receives n messages of `message_bytes` from the server (one
// call or one request). After an untimed warm-up stream of min_messages,
// streams grow (x2..x16) until one lasts at least half of `target_time` (or
// has max_messages); that last stream is the result.
absl::StatusOr<StreamSummary> MeasureStream(const StreamOptions& options, size_t message_bytes,
                                            const std::function<absl::Status(int)>& stream);

// One JSON object, printed as one line on stdout (and flushed).
class JsonLine {
 public:
  JsonLine& Add(absl::string_view key, absl::string_view value);
  JsonLine& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  JsonLine& Add(absl::string_view key, int64_t value);
  JsonLine& Add(absl::string_view key, int value) { return Add(key, int64_t{value}); }
  JsonLine& Add(absl::string_view key, size_t value) {
    return Add(key, static_cast<int64_t>(value));
  }
  JsonLine& Add(absl::string_view key, double value);
  JsonLine& Add(const LatencySummary& summary);
  JsonLine& Add(const StreamSummary& summary);

  std::string ToString() const;
  void Print() const;

 private:
  std::string body_;
};

// Prints {"bench":"error","message":...} and returns 1: for main().
int ReportFailure(absl::string_view program, const absl::Status& status);

// For servers: BlockStopSignals() first thing in main (before any thread
// starts, so every thread inherits the mask), then WaitForStop() once
// serving. It returns when SIGINT, SIGTERM or SIGHUP arrives, or, with
// `watch_stdin`, when stdin reaches end of file (bench/run.py keeps a pipe
// open to each server, so a server never outlives an orchestrator that died).
void BlockStopSignals();
void WaitForStop(bool watch_stdin);

}  // namespace bench

#endif  // IPCRPC_BENCH_HARNESS_H_
