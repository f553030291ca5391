// Tests for runtime/internal/payload_queue.h: FIFO order across the inline
// slot, spills and compaction.

#include "runtime/internal/payload_queue.h"

#include <string>

#include "gtest/gtest.h"

namespace ipcrpc::internal {
namespace {

TEST(PayloadQueueTest, OneAtATime) {
  PayloadQueue q;
  EXPECT_TRUE(q.empty());
  for (int i = 0; i < 5; ++i) {
    q.push_back(std::string(100, static_cast<char>('a' + i)));
    ASSERT_EQ(q.size(), 1u);
    EXPECT_EQ(q.front().payload, std::string(100, static_cast<char>('a' + i)));
    q.pop_front();
    EXPECT_TRUE(q.empty());
  }
}

TEST(PayloadQueueTest, KeepsOrderThroughSpillsAndCompaction) {
  // Interleaved pushes and pops keep the queue long enough to compact
  // several times; every payload must come out once, in order.
  PayloadQueue q;
  int pushed = 0, popped = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7; ++i) q.push_back(std::to_string(pushed++));
    for (int i = 0; i < 5; ++i) {
      ASSERT_FALSE(q.empty());
      EXPECT_EQ(q.front().payload, std::to_string(popped++));
      q.pop_front();
    }
    EXPECT_EQ(q.size(), static_cast<size_t>(pushed - popped));
  }
  while (!q.empty()) {
    EXPECT_EQ(q.front().payload, std::to_string(popped++));
    q.pop_front();
  }
  EXPECT_EQ(popped, pushed);
}

TEST(PayloadQueueTest, FrontIsMovable) {
  PayloadQueue q;
  q.push_back("first");
  q.push_back("second");
  std::string taken = std::move(q.front().payload);
  q.pop_front();
  EXPECT_EQ(taken, "first");
  EXPECT_EQ(q.front().payload, "second");
}

}  // namespace
}  // namespace ipcrpc::internal
