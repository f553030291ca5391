#include "tools/cli/latency_histogram.h"

#include <cmath>

#include "gtest/gtest.h"

namespace ipcrpc::cli {
namespace {

// Within the histogram's precision (1/128 of the value, plus a nanosecond).
void ExpectNear(absl::Duration actual, absl::Duration expected) {
  const double e = absl::ToDoubleNanoseconds(expected);
  EXPECT_NEAR(absl::ToDoubleNanoseconds(actual), e, e / 128 + 1)
      << actual << " vs " << expected;
}

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), absl::ZeroDuration());
  EXPECT_EQ(h.min(), absl::ZeroDuration());
  EXPECT_EQ(h.mean(), absl::ZeroDuration());
}

TEST(LatencyHistogramTest, PercentilesOfAUniformRange) {
  LatencyHistogram h;
  for (int us = 1; us <= 10000; ++us) h.Record(absl::Microseconds(us));
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.min(), absl::Microseconds(1));
  EXPECT_EQ(h.max(), absl::Microseconds(10000));
  ExpectNear(h.Percentile(50), absl::Microseconds(5000));
  ExpectNear(h.Percentile(99), absl::Microseconds(9900));
  ExpectNear(h.Percentile(99.9), absl::Microseconds(9990));
  ExpectNear(h.mean(), absl::Nanoseconds(5000500));
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int ns = 0; ns < 256; ++ns) h.Record(absl::Nanoseconds(ns));
  EXPECT_EQ(h.Percentile(50), absl::Nanoseconds(127));
  EXPECT_EQ(h.Percentile(100), absl::Nanoseconds(255));
}

TEST(LatencyHistogramTest, ATailIsSeen) {
  LatencyHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(absl::Microseconds(50));
  h.Record(absl::Seconds(3));
  ExpectNear(h.Percentile(99.9), absl::Microseconds(50));
  ExpectNear(h.Percentile(100), absl::Seconds(3));
  EXPECT_EQ(h.max(), absl::Seconds(3));
}

TEST(LatencyHistogramTest, MergeAddsUp) {
  LatencyHistogram a, b;
  for (int i = 0; i < 100; ++i) a.Record(absl::Microseconds(10));
  for (int i = 0; i < 100; ++i) b.Record(absl::Milliseconds(10));
  a.Merge(b);
  EXPECT_EQ(a.count(), 200u);
  ExpectNear(a.Percentile(50), absl::Microseconds(10));
  ExpectNear(a.Percentile(51), absl::Milliseconds(10));
  EXPECT_EQ(a.min(), absl::Microseconds(10));
  EXPECT_EQ(a.max(), absl::Milliseconds(10));
}

TEST(LatencyHistogramTest, HugeAndNegativeValuesStayInRange) {
  LatencyHistogram h;
  h.Record(absl::Hours(24 * 365));
  h.Record(-absl::Seconds(1));  // a clock step: counted as 0
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.min(), absl::ZeroDuration());
  ExpectNear(h.Percentile(100), absl::Hours(24 * 365));
}

}  // namespace
}  // namespace ipcrpc::cli
