#include "base/fd_util.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ipcrpc {
namespace {

// What the cursor still has to write, as one string.
std::string Left(IovecCursor& cursor) {
  std::string out;
  if (cursor.done()) return out;
  const iovec* iov = cursor.iov();
  for (int i = 0; i < cursor.iov_count(); ++i) {
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  return out;
}

TEST(IovecCursorTest, NothingToWriteIsDoneAtOnce) {
  IovecCursor none({});
  EXPECT_TRUE(none.done());
  std::vector<absl::string_view> empties = {"", absl::string_view(), ""};
  IovecCursor only_empty(empties);
  EXPECT_TRUE(only_empty.done());
}

TEST(IovecCursorTest, SkipsEmptyChunks) {
  std::vector<absl::string_view> chunks = {"", "ab", "", "cde", ""};
  IovecCursor cursor(chunks);
  ASSERT_FALSE(cursor.done());
  EXPECT_EQ(cursor.iov_count(), 2);
  EXPECT_EQ(Left(cursor), "abcde");
}

TEST(IovecCursorTest, PartialWritesResumeWhereTheKernelStopped) {
  std::vector<absl::string_view> chunks = {"abc", "defg", "hi"};
  IovecCursor cursor(chunks);
  cursor.Advance(1);  // inside the first chunk
  EXPECT_EQ(Left(cursor), "bcdefghi");
  EXPECT_EQ(cursor.iov_count(), 3);
  cursor.Advance(2);  // exactly the rest of the first chunk
  EXPECT_EQ(Left(cursor), "defghi");
  EXPECT_EQ(cursor.iov_count(), 2);
  cursor.Advance(5);  // the second chunk and part of the third
  EXPECT_EQ(Left(cursor), "i");
  EXPECT_EQ(cursor.iov_count(), 1);
  cursor.Advance(1);
  EXPECT_TRUE(cursor.done());
}

TEST(IovecCursorTest, AdvanceZeroChangesNothing) {
  std::vector<absl::string_view> chunks = {"xy"};
  IovecCursor cursor(chunks);
  cursor.Advance(0);
  EXPECT_EQ(Left(cursor), "xy");
}

TEST(IovecCursorTest, HandsAtMostTheCapToOneCall) {
  std::vector<std::string> storage(IovecCursor::kMaxIovecsPerCall + 10, "z");
  std::vector<absl::string_view> chunks(storage.begin(), storage.end());
  IovecCursor cursor(chunks);
  EXPECT_EQ(cursor.iov_count(), IovecCursor::kMaxIovecsPerCall);
  cursor.Advance(IovecCursor::kMaxIovecsPerCall);
  EXPECT_EQ(cursor.iov_count(), 10);
  cursor.Advance(10);
  EXPECT_TRUE(cursor.done());
}

// With a real pipe: a non-blocking writev into a nearly full pipe is taken in
// part; the cursor's next call delivers the rest, in order.
TEST(IovecCursorTest, WritesEveryByteThroughAPipeInOrder) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  ScopedFd read_end(fds[0]);
  ScopedFd write_end(fds[1]);
  std::string a(40000, 'a'), b(50000, 'b'), c(30000, 'c');
  std::vector<absl::string_view> chunks = {a, "", b, c};
  IovecCursor cursor(chunks);
  std::string received;
  char buf[8192];
  int partial_writes = 0;
  while (!cursor.done()) {
    ssize_t n = ::writev(write_end.get(), cursor.iov(), cursor.iov_count());
    if (n > 0) {
      cursor.Advance(static_cast<size_t>(n));
      if (!cursor.done()) ++partial_writes;
    }
    ssize_t r;
    while ((r = ::read(read_end.get(), buf, sizeof(buf))) > 0) received.append(buf, r);
  }
  ssize_t r;
  while ((r = ::read(read_end.get(), buf, sizeof(buf))) > 0) received.append(buf, r);
  EXPECT_GT(partial_writes, 0);  // 120000 bytes do not fit a 64 KiB pipe
  EXPECT_EQ(received, a + b + c);
}

TEST(PollUntilTest, ReturnsTheReadyCount) {
  absl::StatusOr<ScopedFd> event = MakeEventFd();
  ASSERT_TRUE(event.ok()) << event.status();
  SignalEventFd(event->get());
  pollfd fds[1] = {{event->get(), POLLIN, 0}};
  absl::StatusOr<int> n = PollUntil(absl::MakeSpan(fds), absl::InfiniteFuture(), "test");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(fds[0].revents & POLLIN);
}

TEST(PollUntilTest, NeverReportsTheDeadlineEarly) {
  absl::StatusOr<ScopedFd> event = MakeEventFd();
  ASSERT_TRUE(event.ok()) << event.status();
  pollfd fds[1] = {{event->get(), POLLIN, 0}};
  // Not a whole number of milliseconds: poll() rounds, PollUntil must not.
  absl::Time deadline = absl::Now() + absl::Microseconds(2500);
  absl::StatusOr<int> n = PollUntil(absl::MakeSpan(fds), deadline, "waiting for x");
  EXPECT_GE(absl::Now(), deadline);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(n.status().message(), "waiting for x: deadline exceeded");
}

}  // namespace
}  // namespace ipcrpc
