#include "runtime/internal/segment_allocator.h"

#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

TEST(SegmentAllocator, FirstFitAlignedAndMerging) {
  SegmentAllocator a(4096);
  std::optional<uint64_t> x = a.Allocate(1);
  std::optional<uint64_t> y = a.Allocate(100);
  std::optional<uint64_t> z = a.Allocate(64);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(*x, 0u);
  EXPECT_EQ(*y, 64u);
  EXPECT_EQ(*z, 192u);
  EXPECT_EQ(a.used(), 256u);
  a.Free(*y);
  EXPECT_EQ(a.Allocate(128).value_or(1), 64u);  // reuses the hole
  a.Free(64);
  a.Free(*x);
  a.Free(*z);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.Allocate(4096).value_or(1), 0u);  // everything merged back
  EXPECT_FALSE(a.Allocate(1).has_value());
}

TEST(SegmentAllocator, RefusesWhatDoesNotFit) {
  SegmentAllocator a(1 << 20);
  EXPECT_FALSE(a.Allocate(0).has_value());
  EXPECT_FALSE(a.Allocate((1 << 20) + 1).has_value());
  a.Free(12345);  // not allocated: ignored
  EXPECT_TRUE(a.empty());
}

}  // namespace
}  // namespace ipcrpc::internal
