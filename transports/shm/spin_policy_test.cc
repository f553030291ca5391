// Tests of the adaptive spin policy (spin_policy.h): hits keep the budget,
// misses halve it and then turn spinning off, probes back off and are bounded.

#include "transports/shm/spin_policy.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ipcrpc::shm {
namespace {

TEST(AdaptiveSpinTest, HitsKeepTheBudgetMissesTurnItOffProbesBackOff) {
  shm::AdaptiveSpin spin(absl::Microseconds(40));
  EXPECT_EQ(spin.NextBudgetNs(), 40000);
  spin.Record(false);
  EXPECT_EQ(spin.NextBudgetNs(), 20000);  // halved, never below max/2
  spin.Record(true);
  EXPECT_EQ(spin.NextBudgetNs(), 40000);  // a hit restores it
  spin.Record(false);
  spin.Record(false);  // a miss at half budget: off
  int waits = 0;
  while (spin.NextBudgetNs() == 0) ++waits;
  EXPECT_EQ(waits, static_cast<int>(shm::AdaptiveSpin::kMinProbeInterval) - 1);
  spin.Record(false);  // the probe failed: the interval doubles
  waits = 0;
  while (spin.NextBudgetNs() == 0) ++waits;
  EXPECT_EQ(waits, 2 * static_cast<int>(shm::AdaptiveSpin::kMinProbeInterval) - 1);
  spin.Record(true);  // the probe paid off: spinning is back
  EXPECT_EQ(spin.NextBudgetNs(), 40000);
}

TEST(AdaptiveSpinTest, ProbeIntervalIsBoundedAndZeroMaxNeverSpins) {
  shm::AdaptiveSpin spin(absl::Microseconds(10));
  for (int i = 0; i < 20; ++i) {
    while (spin.NextBudgetNs() == 0) {
    }
    spin.Record(false);
  }
  int waits = 0;
  while (spin.NextBudgetNs() == 0) ++waits;
  EXPECT_EQ(waits, static_cast<int>(shm::AdaptiveSpin::kMaxProbeInterval) - 1);

  shm::AdaptiveSpin off(absl::ZeroDuration());
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(off.NextBudgetNs(), 0);
}

}  // namespace
}  // namespace ipcrpc::shm
