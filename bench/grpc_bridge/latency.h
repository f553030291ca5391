// Round-trip latency of one call, repeated: p50 / p99 in microseconds as a
// JSON line, for bench/grpc_bridge/run.py.

#ifndef IPCRPC_BENCH_GRPC_BRIDGE_LATENCY_H_
#define IPCRPC_BENCH_GRPC_BRIDGE_LATENCY_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace bridge_bench {

// Calls `call` `warmup` times unmeasured, then `calls` times; false from
// `call` stops the run (returns false).
template <typename Call>
bool MeasureAndPrint(const char* name, int warmup, int calls, Call call) {
  for (int i = 0; i < warmup; ++i) {
    if (!call()) return false;
  }
  std::vector<double> us;
  us.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    auto start = std::chrono::steady_clock::now();
    if (!call()) return false;
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                           start)
                     .count());
  }
  std::sort(us.begin(), us.end());
  std::printf("{\"name\":\"%s\",\"calls\":%d,\"p50_us\":%.2f,\"p99_us\":%.2f}\n", name, calls,
              us[us.size() / 2], us[us.size() * 99 / 100]);
  std::fflush(stdout);
  return true;
}

}  // namespace bridge_bench

#endif  // IPCRPC_BENCH_GRPC_BRIDGE_LATENCY_H_
