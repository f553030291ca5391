#include "transports/shm/spin_policy.h"

#include <algorithm>

namespace ipcrpc::shm {

AdaptiveSpin::AdaptiveSpin(absl::Duration max)
    : max_ns_(std::max<int64_t>(0, absl::ToInt64Nanoseconds(max))), budget_ns_(max_ns_) {}

int64_t AdaptiveSpin::NextBudgetNs() {
  if (max_ns_ == 0) return 0;
  if (budget_ns_ > 0) return budget_ns_;
  if (waits_to_probe_ > 0 && --waits_to_probe_ > 0) return 0;
  return max_ns_;  // a probe (again, until one is recorded)
}

void AdaptiveSpin::Record(bool hit) {
  if (max_ns_ == 0) return;
  if (hit) {
    budget_ns_ = max_ns_;
    probe_interval_ = kMinProbeInterval;
    return;
  }
  if (budget_ns_ == max_ns_ && max_ns_ / 2 > 0) {
    budget_ns_ = max_ns_ / 2;
    return;
  }
  if (budget_ns_ == 0) {  // a failed probe
    probe_interval_ = std::min(probe_interval_ * 2, kMaxProbeInterval);
  }
  budget_ns_ = 0;
  waits_to_probe_ = probe_interval_;
}

}  // namespace ipcrpc::shm
