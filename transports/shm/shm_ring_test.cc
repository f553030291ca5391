// Tests of the shared-memory ring transport: the Transport contract in every
// mode, offer/fd validation, a peer scribbling over the region, a peer
// process killed mid-call, nothing left behind, and an RPC smoke test.
//
// The cross-process tests start this binary again (argv[1] == kChildFlag) as
// the client; main() is at the bottom.

#include "transports/shm/shm_ring.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/shm_region.h"
#include "transports/shm/spin_policy.h"
#include "transports/testing/transport_contract.h"

extern char** environ;

namespace ipcrpc {
namespace {

using testing::ReadExactly;
using testing::WriteAll;


constexpr char kChildFlag[] = "--shm_test_child";
constexpr absl::Duration kPatience = absl::Seconds(20);
// Liveness bounds: generous, far above what it takes (a few ms).
constexpr absl::Duration kPromptly = absl::Seconds(1);

// EXPECT_TRUE(Mentions(status.message(), "magic")): a message names the problem.
::testing::AssertionResult Mentions(absl::string_view message, absl::string_view text) {
  if (absl::StrContains(message, text)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << message << "\" does not mention \"" << text
                                       << "\"";
}

ShmOptions Options(uint64_t ring_bytes, wire::ShmParams::Wake wake, bool spin = true) {
  ShmOptions options;
  options.ring_bytes = ring_bytes;
  options.wake = wake;
  options.spin = spin;
  return options;
}

struct ControlPair {
  ScopedFd client;
  ScopedFd server;
};

absl::StatusOr<ControlPair> MakeControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  return ControlPair{ScopedFd(sv[0]), ScopedFd(sv[1])};
}

std::vector<ScopedFd> DupAll(const std::vector<int>& fds) {
  std::vector<ScopedFd> out;
  for (int fd : fds) out.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  return out;
}

uint32_t WakeCode(wire::ShmParams::Wake wake) {
  return wake == wire::ShmParams::SEMAPHORE ? shm::kWakeSemaphore : shm::kWakeFutex;
}

// One in-process connection, made the way the upgrade makes it.
struct Connection {
  std::unique_ptr<Transport> client;
  std::unique_ptr<Transport> server;
  // The test's own mapping of the region (when asked for), to scribble on.
  std::optional<shm::ShmRegion> view;

  shm::ShmHeader& header() { return view->header(); }
  shm::ShmRingControl& ring(int index) { return header().ring[index]; }
};

absl::StatusOr<Connection> Connect(const ShmOptions& options, bool with_view = false) {
  IPCRPC_ASSIGN_OR_RETURN(ControlPair control, MakeControlPair());
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending, PrepareShm(options));
  wire::TransportOffer offer;
  std::vector<int> fds;
  pending->FillOffer(&offer, &fds);
  Connection c;
  if (with_view) {
    std::vector<ScopedFd> dup = DupAll(fds);
    IPCRPC_ASSIGN_OR_RETURN(shm::ShmRegion view,
                            shm::ShmRegion::Attach(std::move(dup[0]), options.ring_bytes,
                                                   WakeCode(options.wake)));
    view.CloseMemfd();
    c.view.emplace(std::move(view));
  }
  IPCRPC_ASSIGN_OR_RETURN(c.client,
                          AttachShm(offer, DupAll(fds), std::move(control.client), options));
  IPCRPC_ASSIGN_OR_RETURN(c.server,
                          pending->Complete(std::move(control.server), absl::InfiniteFuture()));
  return c;
}

absl::StatusOr<testing::TransportPair> MakeContractPair(const ShmOptions& options) {
  IPCRPC_ASSIGN_OR_RETURN(Connection c, Connect(options));
  return testing::TransportPair{std::move(c.client), std::move(c.server)};
}

// ---------------------------------------------------------------------------
// The Transport contract, in every mode.

using testing::TransportContractTest;
using testing::TransportFactory;

TransportFactory Factory(std::string name, ShmOptions options) {
  return TransportFactory{std::move(name), [options] { return MakeContractPair(options); }};
}

INSTANTIATE_TEST_SUITE_P(
    Shm, TransportContractTest,
    ::testing::Values(
        Factory("Futex", Options(1 << 20, wire::ShmParams::FUTEX)),
        Factory("Semaphore", Options(1 << 20, wire::ShmParams::SEMAPHORE)),
        Factory("FutexTinyRing", Options(4096, wire::ShmParams::FUTEX)),
        Factory("SemaphoreTinyRing", Options(4096, wire::ShmParams::SEMAPHORE)),
        Factory("FutexNoSpin", Options(1 << 20, wire::ShmParams::FUTEX, /*spin=*/false)),
        Factory("SemaphoreNoSpinTinyRing",
                Options(4096, wire::ShmParams::SEMAPHORE, /*spin=*/false))),
    [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Behaviour beyond the contract, in both wake modes.

class ShmModeTest : public ::testing::TestWithParam<wire::ShmParams::Wake> {};

INSTANTIATE_TEST_SUITE_P(Wake, ShmModeTest,
                         ::testing::Values(wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE),
                         [](const auto& info) { return wire::ShmParams::Wake_Name(info.param); });

TEST_P(ShmModeTest, OfferNamesTheTransportAndCarriesOneMemfd) {
  auto pending = PrepareShm(Options(8192, GetParam()));
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  EXPECT_EQ(offer.transport(), GetParam() == wire::ShmParams::FUTEX ? "shm" : "shm+sem");
  EXPECT_EQ(offer.shm().ring_bytes(), 8192u);
  EXPECT_EQ(offer.shm().wake(), GetParam());
  ASSERT_EQ(fds.size(), 1u);
  char link[256] = {};
  ASSERT_GT(::readlink(absl::StrCat("/proc/self/fd/", fds[0]).c_str(), link, sizeof(link) - 1),
            0);
  EXPECT_TRUE(Mentions(std::string(link), "memfd:"));
  const int required = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;  // (+ F_SEAL_EXEC on 6.3+)
  EXPECT_EQ(::fcntl(fds[0], F_GET_SEALS) & required, required);
}

TEST_P(ShmModeTest, WrapAroundKeepsEveryByte) {
  auto c = Connect(Options(4096, GetParam()));
  ASSERT_TRUE(c.ok()) << c.status();
  // 1000-byte messages through a 4096-byte ring: the counters cross the end
  // of the ring at a different offset every time.
  for (int i = 0; i < 100; ++i) {
    std::string message(1000, static_cast<char>('a' + i % 26));
    message[0] = static_cast<char>(i);
    absl::string_view chunks[] = {absl::string_view(message).substr(0, 7),
                                  absl::string_view(message).substr(7)};
    ASSERT_TRUE(c->client->Write(chunks, absl::Now() + kPatience).ok());
    auto got = ReadExactly(*c->server, 1000);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, message) << "message " << i;
  }
}

TEST_P(ShmModeTest, InterruptBeforeReadAbortsTheNextReadOnly) {
  auto c = Connect(Options(4096, GetParam()));
  ASSERT_TRUE(c.ok()) << c.status();
  c->server->Interrupt();
  char buf[4];
  auto r = c->server->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  r = c->server->Read(absl::MakeSpan(buf), absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
}

TEST_P(ShmModeTest, ShutdownFailsLaterCallsAndTheBlockedWriter) {
  auto c = Connect(Options(4096, GetParam()));
  ASSERT_TRUE(c.ok()) << c.status();
  absl::Status write;
  std::thread writer([&] { write = WriteAll(*c->client, std::string(1 << 20, 'w')); });
  absl::SleepFor(absl::Milliseconds(50));  // the ring is full; the writer waits
  absl::Time start = absl::Now();
  c->client->Shutdown();
  writer.join();
  EXPECT_EQ(write.code(), absl::StatusCode::kUnavailable) << write;
  EXPECT_LT(absl::Now() - start, kPromptly);
  char buf[4];
  EXPECT_EQ(c->client->Read(absl::MakeSpan(buf), absl::Now()).status().code(),
            absl::StatusCode::kUnavailable);
  // The server still reads what was written before, then sees the end.
  size_t got = 0;
  absl::Status end;
  std::vector<char> big(1 << 16);
  for (;;) {
    auto r = c->server->Read(absl::MakeSpan(big), absl::Now() + kPatience);
    if (!r.ok()) {
      end = r.status();
      break;
    }
    got += *r;
  }
  EXPECT_EQ(got, 4096u);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << end;
}

TEST_P(ShmModeTest, ControlSocketHangUpWakesTheBlockedReader) {
  // Play the client by hand: attach, then close only the control socket,
  // without marking anything closed in the region — like a killed process.
  auto control = MakeControlPair();
  ASSERT_TRUE(control.ok());
  auto pending = PrepareShm(Options(4096, GetParam()));
  ASSERT_TRUE(pending.ok());
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto region = shm::ShmRegion::Attach(std::move(DupAll(fds)[0]), 4096, WakeCode(GetParam()));
  ASSERT_TRUE(region.ok()) << region.status();
  region->header().side[shm::kClientSide].attached.store(1);
  auto server = (*pending)->Complete(std::move(control->server), absl::InfiniteFuture());
  ASSERT_TRUE(server.ok()) << server.status();

  absl::Time closed_at;
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    closed_at = absl::Now();
    control->client.reset();
  });
  char buf[4];
  auto r = (*server)->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  absl::Time returned_at = absl::Now();
  closer.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(returned_at - closed_at, kPromptly);
  EXPECT_EQ(WriteAll(**server, "x").code(), absl::StatusCode::kUnavailable);
}

TEST_P(ShmModeTest, StrayBytesOnTheControlSocketEndTheConnection) {
  // The control socket must stay silent after the upgrade
  // (transports/control_channel.h); a byte on it is a broken peer. (Until the
  // shared ControlChannel, shm dropped such bytes and carried on.)
  auto control = MakeControlPair();
  ASSERT_TRUE(control.ok());
  int raw_client_control = control->client.get();
  auto pending = PrepareShm(Options(4096, GetParam()));
  ASSERT_TRUE(pending.ok());
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto client = AttachShm(offer, DupAll(fds), std::move(control->client), ShmOptions{});
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = (*pending)->Complete(std::move(control->server), absl::InfiniteFuture());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WriteAll(**client, "before").ok());
  ASSERT_EQ(::write(raw_client_control, "!", 1), 1);  // behind the transport's back
  // What the peer wrote into the ring before is still read, then the end.
  auto got = ReadExactly(**server, 6);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "before");
  char buf[4];
  auto r = (*server)->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(Mentions(r.status().message(), "must stay silent"));
  EXPECT_EQ(WriteAll(**server, "x").code(), absl::StatusCode::kUnavailable);
}

TEST_P(ShmModeTest, EmptyChunksAreSkipped) {
  // An empty chunk may carry a null data(); it must never reach memcpy.
  auto c = Connect(Options(4096, GetParam()));
  ASSERT_TRUE(c.ok()) << c.status();
  absl::string_view chunks[] = {absl::string_view(), "ab", absl::string_view(), "c",
                                absl::string_view()};
  ASSERT_TRUE(c->client->Write(chunks, absl::Now() + kPatience).ok());
  auto got = ReadExactly(*c->server, 3);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "abc");
}

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

// A valid offer and its fd, for the tests to spoil one thing at a time.
struct OfferFixture {
  std::unique_ptr<PendingTransport> pending;
  wire::TransportOffer offer;
  std::vector<int> fds;
  ControlPair control;
};

OfferFixture MakeOffer(wire::ShmParams::Wake wake = wire::ShmParams::FUTEX) {
  OfferFixture f;
  f.pending = std::move(PrepareShm(Options(4096, wake))).value();
  f.pending->FillOffer(&f.offer, &f.fds);
  f.control = std::move(MakeControlPair()).value();
  return f;
}

absl::Status AttachWith(const wire::TransportOffer& offer, std::vector<ScopedFd> fds) {
  auto control = MakeControlPair();
  if (!control.ok()) return control.status();
  return AttachShm(offer, std::move(fds), std::move(control->client), ShmOptions{}).status();
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

INSTANTIATE_TEST_SUITE_P(Wake, ShmScribbleTest,
                         ::testing::Values(wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE),
                         [](const auto& info) { return wire::ShmParams::Wake_Name(info.param); });

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

// ---------------------------------------------------------------------------
// Nothing left behind.

std::set<std::string> ListDir(const char* path) {
  std::set<std::string> names;
  if (DIR* dir = ::opendir(path)) {
    while (dirent* e = ::readdir(dir)) names.insert(e->d_name);
    ::closedir(dir);
  }
  return names;
}

size_t OpenFdCount() { return ListDir("/proc/self/fd").size(); }

// A watcher thread that cannot be created (RLIMIT_NPROC = 0 for a non-root
// user makes clone() fail) fails the attach with RESOURCE_EXHAUSTED; before
// the shared ControlChannel, std::thread's exception terminated the process.
// Runs in a child that drops root; skipped where uid 65534 is not available
// (Bazel's sandbox maps only uid 0; run the binary directly to see it run).
TEST(ShmCleanupTest, AWatcherThatCannotStartIsResourceExhaustedNotTerminate) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() != 0) ::_exit(77);
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(77);
    }
    rlimit none = {0, 0};
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(3);
    auto c = Connect(Options(4096, wire::ShmParams::FUTEX));
    if (c.ok()) ::_exit(4);
    if (c.status().code() != absl::StatusCode::kResourceExhausted) ::_exit(5);
    if (!Mentions(c.status().message(), "cannot start the watcher thread")) ::_exit(6);
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus)) << "the child died: " << wstatus;
  if (WEXITSTATUS(wstatus) == 77) GTEST_SKIP() << "cannot become uid 65534 here";
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "see the _exit codes in the child";
}

TEST(ShmCleanupTest, NoFdLeaksAndNothingInDevShm) {
  const std::set<std::string> dev_shm = ListDir("/dev/shm");
  const size_t fds = OpenFdCount();
  for (auto wake : {wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE}) {
    {  // A connection that carried bytes both ways.
      auto c = Connect(Options(4096, wake));
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ(ListDir("/dev/shm"), dev_shm);
      ASSERT_TRUE(WriteAll(*c->client, "there").ok());
      ASSERT_TRUE(ReadExactly(*c->server, 5).ok());
      ASSERT_TRUE(WriteAll(*c->server, "back").ok());
      ASSERT_TRUE(ReadExactly(*c->client, 4).ok());
    }
    {  // A server whose client never came.
      auto pending = PrepareShm(Options(4096, wake));
      ASSERT_TRUE(pending.ok());
    }
    {  // An attach that failed, on a connection that then went away.
      OfferFixture f = MakeOffer(wake);
      wire::TransportOffer offer = f.offer;
      offer.mutable_shm()->set_ring_bytes(8192);
      EXPECT_FALSE(AttachWith(offer, DupAll(f.fds)).ok());
    }
  }
  EXPECT_EQ(OpenFdCount(), fds);
  EXPECT_EQ(ListDir("/dev/shm"), dev_shm);
}

// ---------------------------------------------------------------------------
// The adaptive spin policy.

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

// ---------------------------------------------------------------------------
// Another process: this binary started again as the client.

int CpuCount() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

// The n-th CPU this process may run on.
int AllowedCpu(int n) {
  cpu_set_t set;
  ::sched_getaffinity(0, sizeof(set), &set);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set) && n-- == 0) return cpu;
  }
  return -1;
}

absl::Status PinTo(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(pid, sizeof(set), &set) != 0) return ErrnoStatus(errno, "pin");
  return absl::OkStatus();
}

class ChildProcess {
 public:
  // Starts the client ("echo": echoes everything; "idle": never reads) and
  // returns once it has attached; server() is the parent's end.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::string& mode,
                                                            const ShmOptions& options) {
    IPCRPC_ASSIGN_OR_RETURN(ControlPair control, MakeControlPair());
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending, PrepareShm(options));
    wire::TransportOffer offer;
    std::vector<int> fds;
    pending->FillOffer(&offer, &fds);
    // Above 4, so that dup2 onto 3 and 4 never meets an fd already there.
    ScopedFd child_control(::fcntl(control.client.get(), F_DUPFD_CLOEXEC, 10));
    ScopedFd child_memfd(::fcntl(fds[0], F_DUPFD_CLOEXEC, 10));
    control.client.reset();
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, child_control.get(), 3);
    ::posix_spawn_file_actions_adddup2(&actions, child_memfd.get(), 4);
    std::string hex = absl::BytesToHexString(offer.SerializeAsString());
    std::string spin = options.spin ? "1" : "0";
    std::string exe = "/proc/self/exe";
    std::vector<char*> argv = {exe.data(), const_cast<char*>(kChildFlag), 
                               const_cast<char*>(mode.c_str()), hex.data(), spin.data(),
                               nullptr};
    pid_t pid;
    int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return ErrnoStatus(rc, "posix_spawn");
    auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid));
    // The child's TRANSPORT_ACK: one byte on the control socket once attached.
    pollfd p = {control.server.get(), POLLIN, 0};
    char ack = 0;
    if (::poll(&p, 1, 20000) != 1 || ::read(control.server.get(), &ack, 1) != 1 || ack != 'Y') {
      return absl::InternalError("the child did not attach");
    }
    IPCRPC_ASSIGN_OR_RETURN(child->server_, pending->Complete(std::move(control.server),
                                                              absl::Now() + kPatience));
    return child;
  }

  ~ChildProcess() {
    server_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Reap();
    }
  }

  pid_t pid() const { return pid_; }
  Transport& server() { return *server_; }
  int Reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::unique_ptr<Transport> server_;
};

// main() of the child.
int RunChild(const std::string& mode, const std::string& offer_hex, bool spin) {
  wire::TransportOffer offer;
  if (!offer.ParseFromString(absl::HexStringToBytes(offer_hex))) return 2;
  ScopedFd ack(::fcntl(3, F_DUPFD_CLOEXEC, 10));
  std::vector<ScopedFd> fds;
  fds.emplace_back(4);
  ShmOptions options;
  options.spin = spin;
  auto transport = AttachShm(offer, std::move(fds), ScopedFd(3), options);
  char answer = transport.ok() ? 'Y' : 'N';
  if (::write(ack.get(), &answer, 1) != 1 || !transport.ok()) return 3;
  ack.reset();
  if (mode == "idle") {
    for (;;) ::pause();
  }
  std::vector<char> buffer(1 << 16);
  for (;;) {
    auto n = (*transport)->Read(absl::MakeSpan(buffer), absl::InfiniteFuture());
    if (!n.ok()) return 0;
    absl::string_view chunks[] = {absl::string_view(buffer.data(), *n)};
    if (!(*transport)->Write(chunks, absl::InfiniteFuture()).ok()) return 0;
  }
}

TEST_P(ShmModeTest, ChildKilledMidReadIsUnavailablePromptly) {
  auto child = ChildProcess::Start("echo", Options(1 << 16, GetParam()));
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(WriteAll((*child)->server(), "ping").ok());
  auto echo = ReadExactly((*child)->server(), 4);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "ping");

  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(200));  // the parent sleeps in Read by then
    killed_at = absl::Now();
    ::kill((*child)->pid(), SIGKILL);
  });
  char buf[8];
  auto r = (*child)->server().Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  absl::Time returned_at = absl::Now();
  killer.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(returned_at - killed_at, kPromptly);
  std::printf("[ shm ] %s: Read returned UNAVAILABLE %s after SIGKILL of the peer\n",
              wire::ShmParams::Wake_Name(GetParam()).c_str(),
              absl::FormatDuration(returned_at - killed_at).c_str());
  int status = (*child)->Reap();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_P(ShmModeTest, ChildKilledWhileTheWriterWaitsForSpace) {
  auto child = ChildProcess::Start("idle", Options(4096, GetParam()));
  ASSERT_TRUE(child.ok()) << child.status();
  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(200));
    killed_at = absl::Now();
    ::kill((*child)->pid(), SIGKILL);
  });
  absl::Status s = WriteAll((*child)->server(), std::string(1 << 20, 'z'));
  absl::Time returned_at = absl::Now();
  killer.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(returned_at - killed_at, kPromptly);
}

// Round trips of 64 bytes between two processes, printed (not asserted): the
// figures depend on the machine and its load.
struct Percentiles {
  absl::Duration p50, p99;
};

Percentiles Summarize(std::vector<absl::Duration> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

TEST(ShmFiguresTest, CrossProcessRoundTrip) {
  const int cpus = CpuCount();
  struct Placement {
    std::string name;
    int parent_cpu, child_cpu;  // -1: not pinned
  };
  std::vector<Placement> placements = {{"unpinned", -1, -1}};
  if (cpus >= 2) placements.push_back({"different CPUs", AllowedCpu(0), AllowedCpu(1)});
  placements.push_back({"same CPU", AllowedCpu(0), AllowedCpu(0)});
  cpu_set_t original;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(original), &original), 0);
  for (auto wake : {wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE}) {
    for (bool spin : {true, false}) {
      for (const Placement& placement : placements) {
        auto child = ChildProcess::Start("echo", Options(1 << 16, wake, spin));
        ASSERT_TRUE(child.ok()) << child.status();
        if (placement.parent_cpu >= 0) {
          ASSERT_TRUE(PinTo(0, placement.parent_cpu).ok());
          ASSERT_TRUE(PinTo((*child)->pid(), placement.child_cpu).ok());
        }
        const std::string message(64, 'm');
        std::string echo(64, '\0');
        const int kWarmUp = 200, kRounds = spin ? 20000 : 3000;
        const absl::Time deadline = absl::Now() + kPatience;
        std::vector<absl::Duration> samples;
        samples.reserve(kRounds);
        for (int i = 0; i < kWarmUp + kRounds; ++i) {
          auto start = std::chrono::steady_clock::now();
          ASSERT_TRUE(WriteAll((*child)->server(), message, deadline).ok());
          for (size_t got = 0; got < echo.size();) {
            auto r = (*child)->server().Read(absl::MakeSpan(&echo[got], echo.size() - got),
                                             deadline);
            ASSERT_TRUE(r.ok()) << r.status();
            got += *r;
          }
          if (i >= kWarmUp) {
            samples.push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
          }
        }
        ASSERT_EQ(::sched_setaffinity(0, sizeof(original), &original), 0);
        Percentiles p = Summarize(samples);
        std::printf("[ shm ] round trip 64 B, 2 processes, %-9s spin %-3s %-15s p50 %8.2f us"
                    "  p99 %8.2f us\n",
                    wire::ShmParams::Wake_Name(wake).c_str(), spin ? "on" : "off",
                    placement.name.c_str(), absl::ToDoubleMicroseconds(p.p50),
                    absl::ToDoubleMicroseconds(p.p99));
      }
    }
  }
}

}  // namespace
}  // namespace ipcrpc

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == ipcrpc::kChildFlag) {
    return ipcrpc::RunChild(argv[2], argv[3], std::string(argv[4]) == "1");
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
