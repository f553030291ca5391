// Tests of what the shared-memory transport refuses to trust: bad options,
// malformed offers and fds, a header that disagrees, a second client, and a
// peer scribbling over the region (DATA_LOSS, never a crash; run under ASan).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transports/shm/shm_ring.h"
#include "transports/shm/shm_test_util.h"
#include "transports/testing/transport_contract.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/shm_region.h"

namespace ipcrpc::shm_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// shm_ring_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

// ---------------------------------------------------------------------------
// Validation of options, offers and fds.

TEST(ShmValidationTest, PrepareRejectsBadRingBytes) {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{1000}, uint64_t{2048}, uint64_t{4097},
                         uint64_t{3 * 4096}, uint64_t{1} << 31}) {
    auto pending = PrepareShm(Options(bytes, wire::ShmParams::FUTEX));
    EXPECT_EQ(pending.status().code(), absl::StatusCode::kInvalidArgument) << bytes;
    EXPECT_TRUE(Mentions(pending.status().message(), "ring_bytes")) << bytes;
  }
}

TEST(ShmValidationTest, PrepareRejectsBadWakeAndSpin) {
  auto pending = PrepareShm(Options(4096, wire::ShmParams::WAKE_UNSPECIFIED));
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(pending.status().message(), "wake"));
  ShmOptions options = Options(4096, wire::ShmParams::FUTEX);
  options.max_spin = absl::Seconds(1);
  pending = PrepareShm(options);
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(pending.status().message(), "max_spin"));
}

TEST(ShmValidationTest, AttachRejectsMalformedOffers) {
  OfferFixture f = MakeOffer();
  struct Case {
    std::string what;
    std::function<void(wire::TransportOffer*)> spoil;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"another transport", [](auto* o) { o->set_transport("fifo"); }, "not \"shm\""},
      {"no params", [](auto* o) { o->clear_shm(); }, "no shm parameters"},
      {"name/wake mismatch", [](auto* o) { o->mutable_shm()->set_wake(wire::ShmParams::SEMAPHORE); },
       "wake mode"},
      {"ring not a power of two", [](auto* o) { o->mutable_shm()->set_ring_bytes(5000); },
       "ring_bytes"},
      {"ring too small", [](auto* o) { o->mutable_shm()->set_ring_bytes(2048); }, "ring_bytes"},
  };
  for (const Case& c : cases) {
    wire::TransportOffer offer = f.offer;
    c.spoil(&offer);
    absl::Status s = AttachWith(offer, DupAll(f.fds));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << s;
    EXPECT_TRUE(Mentions(s.message(), c.expected)) << c.what;
  }
  absl::Status none = AttachWith(f.offer, {});
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument) << none;
  EXPECT_TRUE(Mentions(none.message(), "exactly one fd"));
  std::vector<ScopedFd> two = DupAll({f.fds[0], f.fds[0]});
  absl::Status extra = AttachWith(f.offer, std::move(two));
  EXPECT_EQ(extra.code(), absl::StatusCode::kInvalidArgument) << extra;
  EXPECT_TRUE(Mentions(extra.message(), "exactly one fd"));
}

TEST(ShmValidationTest, AttachRejectsABadControlSocket) {
  OfferFixture f = MakeOffer();
  auto missing = AttachShm(f.offer, DupAll(f.fds), ScopedFd(), ShmOptions{});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(missing.status().message(), "control socket"));
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ScopedFd pipe_read(p[0]), pipe_write(p[1]);
  auto pipe = AttachShm(f.offer, DupAll(f.fds), std::move(pipe_read), ShmOptions{});
  EXPECT_EQ(pipe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(pipe.status().message(), "not a connected unix socket"));
}

TEST(ShmValidationTest, AttachRejectsAMemfdOfTheWrongSize) {
  OfferFixture f = MakeOffer();
  wire::TransportOffer offer = f.offer;
  offer.mutable_shm()->set_ring_bytes(8192);
  absl::Status s = AttachWith(offer, DupAll(f.fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Mentions(s.message(), "the memfd is 12288 bytes"));
}

ScopedFd MakeMemfd(uint64_t bytes, unsigned flags, int seals) {
  ScopedFd fd(::memfd_create("shm-test", MFD_CLOEXEC | flags));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

TEST(ShmValidationTest, AttachRejectsAnUnsealedMemfd) {
  OfferFixture f = MakeOffer();
  const uint64_t bytes = shm::RegionBytes(4096);
  for (unsigned flags : {0u, unsigned{MFD_ALLOW_SEALING}}) {
    std::vector<ScopedFd> fds;
    fds.push_back(MakeMemfd(bytes, flags, 0));
    absl::Status s = AttachWith(f.offer, std::move(fds));
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(Mentions(s.message(), "lacks seals"));
  }
  std::vector<ScopedFd> fds;  // sealed against shrinking only
  fds.push_back(MakeMemfd(bytes, MFD_ALLOW_SEALING, F_SEAL_SHRINK));
  absl::Status s = AttachWith(f.offer, std::move(fds));
  EXPECT_TRUE(Mentions(s.message(), "lacks seals"));
}

TEST(ShmValidationTest, AttachRejectsWhatIsNotAMemfd) {
  OfferFixture f = MakeOffer();
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  std::vector<ScopedFd> fds;
  fds.emplace_back(p[0]);
  ScopedFd pipe_write(p[1]);
  absl::Status s = AttachWith(f.offer, std::move(fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Mentions(s.message(), "not a memfd"));

  // A regular file of the right size (on a disk file system it cannot carry
  // seals; on tmpfs it carries F_SEAL_SEAL only).
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/shm_ring_test_file");
  ScopedFd file(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(file.valid());
  ::unlink(path.c_str());
  ASSERT_EQ(::ftruncate(file.get(), static_cast<off_t>(shm::RegionBytes(4096))), 0);
  fds.clear();
  fds.push_back(std::move(file));
  s = AttachWith(f.offer, std::move(fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Mentions(s.message(), "not a memfd") || Mentions(s.message(), "lacks seals")) << s;
}

TEST(ShmValidationTest, AttachRejectsASealedMemfdWithoutTheHeader) {
  OfferFixture f = MakeOffer();
  std::vector<ScopedFd> fds;
  fds.push_back(MakeMemfd(shm::RegionBytes(4096), MFD_ALLOW_SEALING,
                          F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
  absl::Status s = AttachWith(f.offer, std::move(fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Mentions(s.message(), "magic"));
}

TEST(ShmValidationTest, AttachRejectsAHeaderThatDisagreesWithTheOffer) {
  OfferFixture f = MakeOffer(wire::ShmParams::SEMAPHORE);
  wire::TransportOffer offer = f.offer;
  offer.set_transport("shm");
  offer.mutable_shm()->set_wake(wire::ShmParams::FUTEX);
  absl::Status s = AttachWith(offer, DupAll(f.fds));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Mentions(s.message(), "disagrees with the offer"));
}

TEST(ShmValidationTest, OneClientPerRegion) {
  OfferFixture f = MakeOffer();
  auto first = AttachShm(f.offer, DupAll(f.fds), std::move(f.control.client), ShmOptions{});
  ASSERT_TRUE(first.ok()) << first.status();
  absl::Status second = AttachWith(f.offer, DupAll(f.fds));
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition) << second;
  EXPECT_TRUE(Mentions(second.message(), "already attached"));
}

TEST(ShmValidationTest, CompleteNeedsAnAttachedClientAndRunsOnce) {
  OfferFixture f = MakeOffer();
  auto early = f.pending->Complete(std::move(f.control.server), absl::InfiniteFuture());
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Mentions(early.status().message(), "has not attached"));

  f = MakeOffer();
  auto client = AttachShm(f.offer, DupAll(f.fds), std::move(f.control.client), ShmOptions{});
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = f.pending->Complete(std::move(f.control.server), absl::InfiniteFuture());
  ASSERT_TRUE(server.ok()) << server.status();
  auto again = f.pending->Complete(ScopedFd(), absl::InfiniteFuture());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------
// A peer scribbling over the region: DATA_LOSS, never a crash (run under ASan).

class ShmScribbleTest : public ShmModeTest {
 protected:
  void SetUp() override {
    auto c = Connect(Options(4096, GetParam()), /*with_view=*/true);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = std::move(*c);
  }
  shm::ShmRingControl& to_server() { return c_.ring(shm::kClientToServerRing); }

  void ExpectReadDataLoss(Transport& t, absl::string_view mentions) {
    char buf[64];
    auto r = t.Read(absl::MakeSpan(buf), absl::Now() + kPatience);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    EXPECT_TRUE(Mentions(r.status().message(), mentions));
  }
  void ExpectWriteDataLoss(Transport& t, absl::string_view mentions, size_t bytes = 1) {
    absl::Status s = WriteAll(t, std::string(bytes, 'x'));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_TRUE(Mentions(s.message(), mentions));
  }

  Connection c_;
};

IPCRPC_INSTANTIATE_WAKE_MODES(ShmScribbleTest);

TEST_P(ShmScribbleTest, HeadBeyondCapacity) {
  to_server().head.store(4097);
  ExpectReadDataLoss(*c_.server, "head 4097 is impossible");
  // For good, and for writing too.
  ExpectReadDataLoss(*c_.server, "head 4097 is impossible");
  ExpectWriteDataLoss(*c_.server, "head 4097 is impossible");
}

TEST_P(ShmScribbleTest, HugeHead) {
  to_server().head.store(~uint64_t{0});
  ExpectReadDataLoss(*c_.server, "impossible");
}

TEST_P(ShmScribbleTest, HeadGoingBackwards) {
  ASSERT_TRUE(WriteAll(*c_.client, "0123456789").ok());
  ASSERT_TRUE(ReadExactly(*c_.server, 10).ok());
  to_server().head.store(5);  // behind the tail
  ExpectReadDataLoss(*c_.server, "head 5 is impossible");
}

TEST_P(ShmScribbleTest, TailAheadOfHead) {
  // The producer re-reads the tail when it needs space: fill the ring first.
  ASSERT_TRUE(WriteAll(*c_.client, std::string(4096, 'f')).ok());
  to_server().tail.store(5000);
  ExpectWriteDataLoss(*c_.client, "tail 5000 is impossible");
  // The server owns that tail: it notices too.
  ExpectReadDataLoss(*c_.server, "tail is 5000");
}

TEST_P(ShmScribbleTest, TailGoingBackwards) {
  const std::string block(4000, 'b');
  ASSERT_TRUE(WriteAll(*c_.client, block).ok());
  ASSERT_TRUE(ReadExactly(*c_.server, block.size()).ok());
  ASSERT_TRUE(WriteAll(*c_.client, block).ok());  // needs the space: sees tail 4000
  to_server().tail.store(3);
  ExpectWriteDataLoss(*c_.client, "tail 3 is impossible", /*bytes=*/1000);  // more than is free
}

TEST_P(ShmScribbleTest, OwnHeadOverwritten) {
  to_server().head.store(3);
  ExpectWriteDataLoss(*c_.client, "head is 3, this side wrote 0");
}

TEST_P(ShmScribbleTest, MagicOverwritten) {
  c_.header().magic = 0x1234;
  ExpectReadDataLoss(*c_.server, "magic");
  ExpectWriteDataLoss(*c_.client, "magic");
}

TEST_P(ShmScribbleTest, ABlockedReaderWakesToTheDamage) {
  std::thread scribbler([&] {
    absl::SleepFor(absl::Milliseconds(100));  // long past the spin: asleep
    to_server().head.store(1 << 20);
    c_.server->Interrupt();  // the wake-up; the corruption wins over ABORTED
  });
  ExpectReadDataLoss(*c_.server, "impossible");
  scribbler.join();
}

TEST_P(ShmScribbleTest, GarbageOverTheWholeHeader) {
  std::memset(static_cast<void*>(&c_.header()), 0xa5, shm::kHeaderBytes);
  ExpectReadDataLoss(*c_.server, "magic");
  ExpectWriteDataLoss(*c_.client, "magic");
  // Shutting down and destroying both sides on the garbage must not crash.
  c_.client->Shutdown();
  c_.client.reset();
  c_.server.reset();
}

TEST_P(ShmScribbleTest, GarbageOverCountersAndWakeWords) {
  // Everything but the magic: the counters and sleeping words of both rings.
  for (shm::ShmRingControl& ring : c_.header().ring) {
    ring.head.store(0xa5a5a5a5a5a5a5a5);
    ring.tail.store(0x5a5a5a5a5a5a5a5a);
    ring.reader_sleeping.store(0xa5a5a5a5);
    ring.writer_sleeping.store(0xa5a5a5a5);
  }
  ExpectReadDataLoss(*c_.server, "shared memory corrupted");
  ExpectWriteDataLoss(*c_.client, "shared memory corrupted");
}

// A peer that overwrites a semaphore — count, waiter count and glibc's
// futex-flags word — while this side sleeps in it cannot abort this process
// (glibc's sem_wait would: "The futex facility returned an unexpected error
// code"); the sleeper is still woken by the next post and reads its data.
TEST(ShmScribbleSemaphoreTest, ASemaphoreScribbledWhileSleepingNeitherAbortsNorStalls) {
  auto c = Connect(Options(4096, wire::ShmParams::SEMAPHORE, /*spin=*/false), true);
  ASSERT_TRUE(c.ok()) << c.status();
  shm::ShmRingControl& ring = c->ring(shm::kClientToServerRing);
  std::atomic<bool> reading{true};
  absl::StatusOr<size_t> r;
  char buf[4];
  std::thread reader([&] {
    r = c->server->Read(absl::MakeSpan(buf), absl::Now() + kPatience);  // sleeps
    reading = false;
  });
  absl::SleepFor(absl::Milliseconds(50));  // let it fall asleep
  std::memset(reinterpret_cast<char*>(&ring.data_ready), 0xa5, sizeof(ring.data_ready));
  absl::SleepFor(absl::Milliseconds(20));
  absl::string_view chunks[] = {"ping"};
  const absl::Time posted = absl::Now();
  ASSERT_TRUE(c->client->Write(chunks, absl::Now() + kPatience).ok());
  reader.join();
  // Woken by the post, not by its deadline (a generous bound: a liveness
  // check, not a timing).
  EXPECT_LT(absl::Now() - posted, absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(absl::string_view(buf, *r), absl::string_view("ping", *r));
  // And with the flags word scribbled before it sleeps, too.
  std::memset(reinterpret_cast<char*>(&ring.data_ready) + 8, 0x5a, 4);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    absl::string_view more[] = {"pong"};
    EXPECT_TRUE(c->client->Write(more, absl::Now() + kPatience).ok());
  });
  r = c->server->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  writer.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(absl::string_view(buf, *r), absl::string_view("pong", *r));
}

}  // namespace
}  // namespace ipcrpc::shm_test
