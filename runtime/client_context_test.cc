// The std::chrono forms of ClientContext's deadline API.

#include "runtime/client_context.h"

#include <chrono>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ipcrpc {
namespace {

using std::chrono::system_clock;

TEST(ClientContextChronoTest, DeadlineFromASystemClockTimePoint) {
  ClientContext ctx;
  EXPECT_EQ(ctx.deadline_chrono(), system_clock::time_point::max());  // none yet
  const system_clock::time_point tp = system_clock::now() + std::chrono::seconds(3);
  ctx.set_deadline(tp);
  EXPECT_EQ(ctx.deadline(), absl::FromChrono(tp));
  EXPECT_EQ(ctx.deadline_chrono(), tp);
  ctx.set_deadline(system_clock::time_point::max());
  EXPECT_EQ(ctx.deadline(), absl::InfiniteFuture());
}

TEST(ClientContextChronoTest, TimeoutFromAnyDurationType) {
  ClientContext ctx;
  absl::Time before = absl::Now();
  ctx.set_timeout(std::chrono::milliseconds(250));
  absl::Time after = absl::Now();
  EXPECT_GE(ctx.deadline(), before + absl::Milliseconds(250));
  EXPECT_LE(ctx.deadline(), after + absl::Milliseconds(250));

  before = absl::Now();
  ctx.set_timeout(std::chrono::duration<double>(1.5));  // floating-point seconds
  after = absl::Now();
  EXPECT_GE(ctx.deadline(), before + absl::Milliseconds(1500));
  EXPECT_LE(ctx.deadline(), after + absl::Milliseconds(1500));

  before = absl::Now();
  ctx.set_timeout(std::chrono::duration<int, std::ratio<1, 3>>(2));  // 2/3 s
  after = absl::Now();
  EXPECT_GE(ctx.deadline(), before + absl::Nanoseconds(666'666'666));
  EXPECT_LE(ctx.deadline(), after + absl::Nanoseconds(666'666'667));
}

TEST(ClientContextChronoTest, HugeTimeoutsMeanNoDeadline) {
  ClientContext ctx;
  ctx.set_timeout(std::chrono::hours::max());
  EXPECT_EQ(ctx.deadline(), absl::InfiniteFuture());
  EXPECT_EQ(ctx.deadline_chrono(), system_clock::time_point::max());
  ctx.set_timeout(std::chrono::duration<double>(1e300));
  EXPECT_EQ(ctx.deadline(), absl::InfiniteFuture());
  ctx.set_timeout(-std::chrono::hours::max());
  EXPECT_EQ(ctx.deadline(), absl::InfinitePast());
}

TEST(ClientContextChronoTest, DurationConversionIsExactForIntegralTypes) {
  EXPECT_EQ(internal::DurationFromChrono(std::chrono::nanoseconds(123'456'789)),
            absl::Nanoseconds(123'456'789));
  EXPECT_EQ(internal::DurationFromChrono(std::chrono::hours(24 * 365 * 100)),
            absl::Hours(24 * 365 * 100));
  EXPECT_EQ(internal::DurationFromChrono(std::chrono::microseconds(-5)),
            absl::Microseconds(-5));
}

}  // namespace
}  // namespace ipcrpc
