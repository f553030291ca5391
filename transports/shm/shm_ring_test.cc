// Tests of the shared-memory ring transport's behaviour: the Transport
// contract in every mode, and what goes beyond it in both wake modes (offer,
// wrap-around, interrupt, shutdown, liveness on the control socket).
// Validation and scribbling: shm_validation_test.cc; other processes and
// clean-up: shm_process_test.cc; the spin policy: spin_policy_test.cc.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/shm/shm_ring.h"
#include "transports/shm/shm_test_util.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::shm_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// ---------------------------------------------------------------------------
// The Transport contract, in every mode.

using testing::TransportContractTest;
using testing::TransportFactory;

absl::StatusOr<testing::TransportPair> MakeContractPair(const ShmOptions& options) {
  IPCRPC_ASSIGN_OR_RETURN(Connection c, Connect(options));
  return testing::TransportPair{std::move(c.client), std::move(c.server)};
}

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

IPCRPC_INSTANTIATE_WAKE_MODES(ShmModeTest);

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

}  // namespace
}  // namespace ipcrpc::shm_test
