// ipcrpc: per-method call metrics, collected by interceptors.
//
// A CallMetrics counts, per method: calls finished, errors by status code,
// and a latency histogram. Install its interceptor factory on a channel
// (client view: from the call's start to its final status) or a server
// (server view: from the handler's start to the status being sent), then
// read it at any time with Snapshot(). One CallMetrics may serve several
// channels or servers; use one per side to keep the views apart.
//
// Thread-safety: every method is thread-safe. Lifetime: the factories hold
// the CallMetrics (shared), so it lives as long as the last of them.
//
// Example:
//   auto metrics = std::make_shared<ipcrpc::CallMetrics>();
//   std::vector<std::unique_ptr<ipcrpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(ipcrpc::ServerMetricsInterceptorFactory(metrics));
//   builder.experimental().SetInterceptorCreators(std::move(f));
//   ...
//   for (const auto& [method, m] : metrics->Snapshot()) {
//     std::cout << method << " " << m.calls << " calls, p99 " << m.latency.Percentile(0.99);
//   }

#ifndef IPCRPC_RUNTIME_METRICS_INTERCEPTOR_H_
#define IPCRPC_RUNTIME_METRICS_INTERCEPTOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "runtime/interceptor.h"

namespace ipcrpc {

// Latencies in buckets: counts[i] is the number of calls that took at most
// bounds[i] (and more than bounds[i-1]); counts.back() those beyond the last
// bound. The bounds run from 1 µs to ~67 s, doubling.
struct LatencyHistogram {
  std::vector<absl::Duration> bounds;
  std::vector<uint64_t> counts;  // bounds.size() + 1 entries

  uint64_t total() const;
  // The bucket bound at or below which `fraction` (0..1) of the calls fall;
  // InfiniteDuration() if they fall beyond the last bound, zero when empty.
  absl::Duration Percentile(double fraction) const;
};

struct MethodMetrics {
  uint64_t calls = 0;   // finished, whatever their status
  uint64_t errors = 0;  // finished with a status other than OK
  std::map<absl::StatusCode, uint64_t> by_code;  // every status seen, OK included
  LatencyHistogram latency;
};

class CallMetrics {
 public:
  CallMetrics();

  // Records one finished call (what the interceptors call).
  void Record(absl::string_view method, const absl::Status& status, absl::Duration latency);

  // A copy of every method's metrics, keyed by "/pkg.Service/Method".
  std::map<std::string, MethodMetrics> Snapshot() const;

 private:
  const std::vector<absl::Duration> bounds_;
  mutable internal::Mutex mu_;
  std::map<std::string, MethodMetrics, std::less<>> methods_ ABSL_GUARDED_BY(mu_);
};

// Factories whose interceptors record every call into `metrics`.
std::unique_ptr<experimental::ClientInterceptorFactoryInterface> ClientMetricsInterceptorFactory(
    std::shared_ptr<CallMetrics> metrics);
std::unique_ptr<experimental::ServerInterceptorFactoryInterface> ServerMetricsInterceptorFactory(
    std::shared_ptr<CallMetrics> metrics);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_METRICS_INTERCEPTOR_H_
