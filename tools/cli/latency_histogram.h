// ipcrpc CLI: a latency histogram for `ipcrpc bench`.
//
// Records durations in nanoseconds into log-linear buckets (exact below
// 256 ns, then 128 buckets per power of two, so every value is kept to
// within 0.4%) and answers percentiles. Memory is fixed (~60 KiB) whatever
// the number of samples, so a long run cannot grow without bound. Each bench
// caller fills its own histogram; Merge adds them up at the end.
//
// Thread-safety: not thread-safe; one histogram per thread, merged after.
//
// Example:
//   LatencyHistogram h;
//   h.Record(absl::Microseconds(42));
//   absl::Duration p99 = h.Percentile(99);

#ifndef IPCRPC_TOOLS_CLI_LATENCY_HISTOGRAM_H_
#define IPCRPC_TOOLS_CLI_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace ipcrpc::cli {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void Record(absl::Duration latency);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  absl::Duration min() const;
  absl::Duration max() const;
  absl::Duration mean() const;
  // The smallest recorded value that `percent` of the samples do not exceed
  // (to the bucket's precision), e.g. Percentile(99.9); zero if empty.
  absl::Duration Percentile(double percent) const;

 private:
  static constexpr int kSubBuckets = 128;  // per power of two above 256 ns
  static size_t BucketOf(uint64_t nanos);
  static uint64_t ValueOf(size_t bucket);  // the middle of the bucket

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t min_ns_ = UINT64_MAX;
  uint64_t max_ns_ = 0;
  long double sum_ns_ = 0;
};

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_LATENCY_HISTOGRAM_H_
