#include "runtime/metrics_interceptor.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace ipcrpc {
namespace {

using experimental::InterceptionHookPoints;

std::vector<absl::Duration> DefaultBounds() {
  std::vector<absl::Duration> bounds;
  for (int i = 0; i <= 26; ++i) bounds.push_back(absl::Microseconds(int64_t{1} << i));
  return bounds;
}

class ClientMetricsInterceptor final : public experimental::Interceptor {
 public:
  ClientMetricsInterceptor(experimental::ClientRpcInfo* info, std::shared_ptr<CallMetrics> metrics)
      : info_(info), metrics_(std::move(metrics)), start_(absl::Now()) {}
  void Intercept(experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      metrics_->Record(info_->method(), *methods->GetRecvStatus(), absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  experimental::ClientRpcInfo* const info_;
  const std::shared_ptr<CallMetrics> metrics_;
  const absl::Time start_;
};

class ServerMetricsInterceptor final : public experimental::Interceptor {
 public:
  ServerMetricsInterceptor(experimental::ServerRpcInfo* info, std::shared_ptr<CallMetrics> metrics)
      : info_(info), metrics_(std::move(metrics)), start_(absl::Now()) {}
  void Intercept(experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(info_->method(), methods->GetSendStatus(), absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  experimental::ServerRpcInfo* const info_;
  const std::shared_ptr<CallMetrics> metrics_;
  const absl::Time start_;
};

class ClientFactory final : public experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ClientFactory(std::shared_ptr<CallMetrics> metrics) : metrics_(std::move(metrics)) {}
  experimental::Interceptor* CreateClientInterceptor(experimental::ClientRpcInfo* info) override {
    return new ClientMetricsInterceptor(info, metrics_);
  }

 private:
  const std::shared_ptr<CallMetrics> metrics_;
};

class ServerFactory final : public experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerFactory(std::shared_ptr<CallMetrics> metrics) : metrics_(std::move(metrics)) {}
  experimental::Interceptor* CreateServerInterceptor(experimental::ServerRpcInfo* info) override {
    return new ServerMetricsInterceptor(info, metrics_);
  }

 private:
  const std::shared_ptr<CallMetrics> metrics_;
};

}  // namespace

uint64_t LatencyHistogram::total() const {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

absl::Duration LatencyHistogram::Percentile(double fraction) const {
  const uint64_t n = total();
  if (n == 0) return absl::ZeroDuration();
  const double wanted = std::clamp(fraction, 0.0, 1.0) * static_cast<double>(n);
  uint64_t seen = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    seen += counts[i];
    if (static_cast<double>(seen) >= wanted) return bounds[i];
  }
  return absl::InfiniteDuration();
}

CallMetrics::CallMetrics() : bounds_(DefaultBounds()) {}

std::unique_ptr<experimental::ClientInterceptorFactoryInterface> ClientMetricsInterceptorFactory(
    std::shared_ptr<CallMetrics> metrics) {
  return std::make_unique<ClientFactory>(std::move(metrics));
}

std::unique_ptr<experimental::ServerInterceptorFactoryInterface> ServerMetricsInterceptorFactory(
    std::shared_ptr<CallMetrics> metrics) {
  return std::make_unique<ServerFactory>(std::move(metrics));
}

void CallMetrics::Record(absl::string_view method, const absl::Status& status,
                         absl::Duration latency) {
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), latency) - bounds_.begin());
  internal::MutexLock lock(&mu_);
  auto it = methods_.find(method);
  if (it == methods_.end()) {
    it = methods_.emplace(std::string(method), MethodMetrics()).first;
    it->second.latency.bounds = bounds_;
    it->second.latency.counts.assign(bounds_.size() + 1, 0);
  }
  MethodMetrics& m = it->second;
  ++m.calls;
  if (!status.ok()) ++m.errors;
  ++m.by_code[status.code()];
  ++m.latency.counts[bucket];
}

std::map<std::string, MethodMetrics> CallMetrics::Snapshot() const {
  internal::MutexLock lock(&mu_);
  return std::map<std::string, MethodMetrics>(methods_.begin(), methods_.end());
}

}  // namespace ipcrpc
