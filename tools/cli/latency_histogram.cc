#include "tools/cli/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace ipcrpc::cli {
namespace {

constexpr int kExactBelow = 256;  // values under this have a bucket each
constexpr int kMaxShift = 64 - 8;   // the largest uint64_t shifted into [128, 256)

int FloorLog2(uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

LatencyHistogram::LatencyHistogram()
    : buckets_(kExactBelow + static_cast<size_t>(kMaxShift + 1) * kSubBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t nanos) {
  if (nanos < kExactBelow) return nanos;
  // nanos >> shift lies in [128, 256): 128 sub-buckets per power of two.
  const int shift = FloorLog2(nanos) - 7;
  return kExactBelow + static_cast<size_t>(shift - 1) * kSubBuckets +
         static_cast<size_t>((nanos >> shift) - kSubBuckets);
}

uint64_t LatencyHistogram::ValueOf(size_t bucket) {
  if (bucket < kExactBelow) return bucket;
  const size_t above = bucket - kExactBelow;
  const int shift = static_cast<int>(above / kSubBuckets) + 1;
  const uint64_t low = (static_cast<uint64_t>(above % kSubBuckets) + kSubBuckets) << shift;
  return low + (uint64_t{1} << (shift - 1));
}

void LatencyHistogram::Record(absl::Duration latency) {
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(latency));
  const uint64_t v = static_cast<uint64_t>(ns);
  ++buckets_[BucketOf(v)];
  ++count_;
  min_ns_ = std::min(min_ns_, v);
  max_ns_ = std::max(max_ns_, v);
  sum_ns_ += v;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
  sum_ns_ += other.sum_ns_;
}

absl::Duration LatencyHistogram::min() const {
  return count_ == 0 ? absl::ZeroDuration() : absl::Nanoseconds(min_ns_);
}

absl::Duration LatencyHistogram::max() const { return absl::Nanoseconds(max_ns_); }

absl::Duration LatencyHistogram::mean() const {
  return count_ == 0 ? absl::ZeroDuration()
                     : absl::Nanoseconds(static_cast<int64_t>(sum_ns_ / count_));
}

absl::Duration LatencyHistogram::Percentile(double percent) const {
  if (count_ == 0) return absl::ZeroDuration();
  percent = std::clamp(percent, 0.0, 100.0);
  // The rank of the sample asked for, 1-based: p50 of 1..100 is the 50th
  // (less a hair, so that 99.9% of 1000 is the 999th, not the 1000th).
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(percent / 100.0 * count_ - 1e-9)));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      // Never outside what was recorded.
      const uint64_t v = std::clamp(ValueOf(i), min_ns_, max_ns_);
      return absl::Nanoseconds(v);
    }
  }
  return absl::Nanoseconds(max_ns_);
}

}  // namespace ipcrpc::cli
