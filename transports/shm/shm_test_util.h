// ipcrpc shm transport tests: what the shm test binaries share.
//
// An in-process connection made the way the upgrade makes it (optionally
// with the test's own mapping of the region, to scribble on), options and
// control-socket pairs, deadlines, and the wake-mode parameterised fixture.
// testonly; used by shm_ring_test, shm_validation_test and shm_process_test.
//
// Thread-safety: plain functions and values; a Connection is used like the
// two transports in it.

#ifndef IPCRPC_TRANSPORTS_SHM_SHM_TEST_UTIL_H_
#define IPCRPC_TRANSPORTS_SHM_SHM_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/scoped_fd.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/transport.pb.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/shm_region.h"
#include "transports/shm/shm_ring.h"
#include "transports/transport.h"
#include "transports/upgrade.h"

namespace ipcrpc::shm_test {

inline constexpr absl::Duration kPatience = absl::Seconds(20);
// Liveness bounds: generous, far above what it takes (a few ms).
inline constexpr absl::Duration kPromptly = absl::Seconds(1);

// EXPECT_TRUE(Mentions(status.message(), "magic")): a message names the problem.
::testing::AssertionResult Mentions(absl::string_view message, absl::string_view text);

ShmOptions Options(uint64_t ring_bytes, wire::ShmParams::Wake wake, bool spin = true);

struct ControlPair {
  ScopedFd client;
  ScopedFd server;
};

absl::StatusOr<ControlPair> MakeControlPair();

std::vector<ScopedFd> DupAll(const std::vector<int>& fds);

uint32_t WakeCode(wire::ShmParams::Wake wake);

// One in-process connection, made the way the upgrade makes it.
struct Connection {
  std::unique_ptr<Transport> client;
  std::unique_ptr<Transport> server;
  // The test's own mapping of the region (when asked for), to scribble on.
  std::optional<shm::ShmRegion> view;

  shm::ShmHeader& header() { return view->header(); }
  shm::ShmRingControl& ring(int index) { return header().ring[index]; }
};

absl::StatusOr<Connection> Connect(const ShmOptions& options, bool with_view = false);

// A valid offer and its fd, for the tests to spoil one thing at a time.
struct OfferFixture {
  std::unique_ptr<PendingTransport> pending;
  wire::TransportOffer offer;
  std::vector<int> fds;
  ControlPair control;
};

OfferFixture MakeOffer(wire::ShmParams::Wake wake = wire::ShmParams::FUTEX);

// AttachShm with a fresh control socket; its status.
absl::Status AttachWith(const wire::TransportOffer& offer, std::vector<ScopedFd> fds);

// Behaviour in both wake modes; each binary instantiates it with
// IPCRPC_INSTANTIATE_WAKE_MODES(ShmModeTest) if it has TEST_Ps of it.
class ShmModeTest : public ::testing::TestWithParam<wire::ShmParams::Wake> {};

#define IPCRPC_INSTANTIATE_WAKE_MODES(suite)                                                 \
  INSTANTIATE_TEST_SUITE_P(                                                                  \
      Wake, suite, ::testing::Values(wire::ShmParams::FUTEX, wire::ShmParams::SEMAPHORE),    \
      [](const auto& info) { return wire::ShmParams::Wake_Name(info.param); })

}  // namespace ipcrpc::shm_test

#endif  // IPCRPC_TRANSPORTS_SHM_SHM_TEST_UTIL_H_
