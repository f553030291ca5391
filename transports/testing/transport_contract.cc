#include "transports/testing/transport_contract.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ipcrpc::testing {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(20);

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return s;
}

}  // namespace

absl::Status WriteAll(Transport& t, absl::string_view bytes, absl::Time deadline) {
  absl::string_view chunks[] = {bytes};
  return t.Write(chunks, deadline);
}

absl::StatusOr<std::string> ReadExactly(Transport& t, size_t n, absl::Time deadline) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    absl::StatusOr<size_t> r = t.Read(absl::MakeSpan(&out[got], n - got), deadline);
    if (!r.ok()) return r.status();
    if (*r == 0 || *r > n - got) return absl::InternalError("Read returned a bad count");
    got += *r;
  }
  return out;
}

void TransportContractTest::SetUp() {
  absl::StatusOr<TransportPair> pair = GetParam().make();
  ASSERT_TRUE(pair.ok()) << pair.status();
  pair_ = std::move(*pair);
  ASSERT_NE(pair_.left, nullptr);
  ASSERT_NE(pair_.right, nullptr);
}

TEST_P(TransportContractTest, GatherWriteArrivesInOrderBothWays) {
  absl::string_view chunks[] = {"hello", "", ", ", "world"};
  ASSERT_TRUE(pair_.left->Write(chunks, absl::Now() + kPatience).ok());
  auto got = ReadExactly(*pair_.right, 12);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello, world");
  ASSERT_TRUE(WriteAll(*pair_.right, "back").ok());
  got = ReadExactly(*pair_.left, 4);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "back");
}

TEST_P(TransportContractTest, ManySmallWritesKeepTheirOrder) {
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(WriteAll(*pair_.left, absl::StrCat(i % 10)).ok());
    }
  });
  auto got = ReadExactly(*pair_.right, 2000);
  writer.join();
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < 2000; ++i) ASSERT_EQ((*got)[i], '0' + i % 10) << "at " << i;
}

TEST_P(TransportContractTest, WritesLargerThanAnyBufferStreamThrough) {
  // 9 MiB: larger than a pipe, a socket buffer, a message queue and a
  // default shared-memory ring, so the writer must wait for the reader.
  const std::string big = Pattern(9 << 20, 7);
  absl::Status write_status;
  std::thread writer([&] { write_status = WriteAll(*pair_.left, big); });
  auto got = ReadExactly(*pair_.right, big.size());
  writer.join();
  ASSERT_TRUE(write_status.ok()) << write_status;
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == big) << "payload corrupted";
}

TEST_P(TransportContractTest, BothDirectionsAtOnce) {
  const std::string a = Pattern(3 << 20, 1), b = Pattern(3 << 20, 2);
  absl::Status wa, wb;
  std::thread t1([&] { wa = WriteAll(*pair_.left, a); });
  std::thread t2([&] { wb = WriteAll(*pair_.right, b); });
  auto got_b = ReadExactly(*pair_.left, b.size());
  auto got_a = ReadExactly(*pair_.right, a.size());
  t1.join();
  t2.join();
  ASSERT_TRUE(wa.ok() && wb.ok()) << wa << " / " << wb;
  ASSERT_TRUE(got_a.ok() && got_b.ok());
  EXPECT_TRUE(*got_a == a && *got_b == b);
}

TEST_P(TransportContractTest, ReadDeadlineIsDeadlineExceededAndNotEarly) {
  char buf[8];
  absl::Time start = absl::Now();
  auto r = pair_.right->Read(absl::MakeSpan(buf, 8), start + absl::Milliseconds(40));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
  // Still usable afterwards.
  ASSERT_TRUE(WriteAll(*pair_.left, "x").ok());
  auto got = ReadExactly(*pair_.right, 1);
  ASSERT_TRUE(got.ok()) << got.status();
}

TEST_P(TransportContractTest, WriteDeadlineWhenThePeerDoesNotRead) {
  const std::string big = Pattern(64 << 20, 3);
  absl::string_view chunks[] = {big};
  absl::Status s = pair_.left->Write(chunks, absl::Now() + absl::Milliseconds(100));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST_P(TransportContractTest, InterruptWakesABlockedRead) {
  std::thread kicker([&] {
    absl::SleepFor(absl::Milliseconds(30));
    pair_.right->Interrupt();
  });
  char buf[8];
  absl::Time start = absl::Now();
  auto r = pair_.right->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  kicker.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_TRUE(WriteAll(*pair_.left, "y").ok());
  auto got = ReadExactly(*pair_.right, 1);
  ASSERT_TRUE(got.ok()) << got.status();  // an interrupt is not sticky beyond one read
}

TEST_P(TransportContractTest, PeerGoneIsUnavailableForReadAndWrite) {
  ASSERT_TRUE(WriteAll(*pair_.left, "last words").ok());
  pair_.left.reset();
  // Bytes written before the close may still be read; then UNAVAILABLE.
  std::string got;
  absl::Status status;
  char buf[64];
  for (;;) {
    auto r = pair_.right->Read(absl::MakeSpan(buf, sizeof(buf)), absl::Now() + kPatience);
    if (!r.ok()) {
      status = r.status();
      break;
    }
    got.append(buf, *r);
  }
  EXPECT_TRUE(got.empty() || got == "last words") << got;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  absl::Status w = WriteAll(*pair_.right, std::string(1 << 20, 'z'));
  EXPECT_EQ(w.code(), absl::StatusCode::kUnavailable) << w;
}

TEST_P(TransportContractTest, ShutdownWakesTheBlockedReaderAndTellsThePeer) {
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(30));
    pair_.right->Shutdown();
  });
  char buf[8];
  auto r = pair_.right->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  closer.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  auto peer = pair_.left->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(peer.status().code(), absl::StatusCode::kUnavailable) << peer.status();
}

TEST_P(TransportContractTest, DescribesItself) {
  EXPECT_FALSE(pair_.left->description().empty());
  EXPECT_FALSE(pair_.right->description().empty());
}

}  // namespace ipcrpc::testing
