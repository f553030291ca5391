// ipcrpc shm transport: ShmRingTransport, one side of an established ring
// connection.
//
// Reads from one ring and writes into the other of a ShmRegion, spinning
// (spin_policy.h) and then sleeping (wake.h) when there is nothing to read or
// no room to write. Set-up — creating or attaching the region, checking the
// offer — is shm_ring.cc's; this class starts from a region both sides have
// mapped. Every counter read from the region is validated first: a peer that
// scribbles makes this side fail with DATA_LOSS, never touch memory outside
// the region.
//
// Thread-safety: as for every Transport (transports/transport.h): one
// reader, one writer, Interrupt()/Shutdown() from any thread; the control
// channel's watcher thread reports the peer's loss.
//
// Ownership: owns the region (unmapped on destruction) and the control
// socket (through its ControlChannel). The destructor marks this side closed
// in the region, so the peer sees it go.
//
// Example (what PrepareShm's Complete and AttachShm do):
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//       shm::ShmRingTransport::Create(std::move(region), shm::kClientSide,
//                                     std::move(control_socket), max_spin));

#ifndef IPCRPC_TRANSPORTS_SHM_RING_TRANSPORT_H_
#define IPCRPC_TRANSPORTS_SHM_RING_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/scoped_fd.h"
#include "base/sync.h"
#include "transports/control_channel.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/shm_region.h"
#include "transports/shm/spin_policy.h"
#include "transports/shm/wake.h"
#include "transports/transport.h"

namespace ipcrpc::shm {

// The transport names of the two wake modes (TransportOffer.transport).
inline constexpr char kFutexTransportName[] = "shm";
inline constexpr char kSemaphoreTransportName[] = "shm+sem";

// The transport name of a region's wake mode (kWakeFutex / kWakeSemaphore).
inline const char* TransportName(uint32_t wake) {
  return wake == kWakeSemaphore ? kSemaphoreTransportName : kFutexTransportName;
}

// ---------------------------------------------------------------------------
// ShmRingTransport: one side of the connection.
//
// Memory ordering (see also ring_layout.h and wake.h):
//  * producer: copy bytes in, then head.store(release); consumer:
//    head.load(acquire), then copy bytes out. So the bytes are there.
//  * consumer: copy bytes out, then tail.store(release); producer:
//    tail.load(acquire), then reuse the space. So nothing is overwritten
//    before it was read.
//  * closing side: last head store, then closed.store(release); the other
//    side loads closed (acquire) *before* head, so "closed and empty" really
//    means that nothing more will come.
//  * sleeping flags: seq_cst fences on both sides (WaitPoint).

class ShmRingTransport final : public Transport {
 public:
  // Opens the control channel on `control_socket` and starts its watcher
  // (RESOURCE_EXHAUSTED if the thread cannot start). `side` is kServerSide
  // or kClientSide; `max_spin` is the longest spin before sleeping (zero:
  // never spin).
  static absl::StatusOr<std::unique_ptr<Transport>> Create(ShmRegion region, int side,
                                                           ScopedFd control_socket,
                                                           absl::Duration max_spin);
  ~ShmRingTransport() override;

  absl::Status Write(absl::Span<const absl::string_view> chunks, absl::Time deadline) override;
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override;
  void Interrupt() override;
  void Shutdown() override;
  PeerCredentials peer() const override { return control_->peer(); }
  // The control channel knows (a zero-timeout poll of the control socket).
  bool PeerGone() override { return control_->PeerGone(); }
  std::string description() const override { return description_; }
  // Descriptors travel as fd records on the control socket, ahead of the
  // bytes (transports/control_channel.h).
  int max_fds_per_write() const override { return ControlChannel::kMaxFdsPerRecord; }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds, absl::Time deadline) override {
    if (!fds.empty()) {
      absl::Status sent = control_->SendFds(fds, deadline);
      if (!sent.ok()) return sent;
    }
    return Write(chunks, deadline);
  }
  absl::StatusOr<FdBatch> TakeFdBatch() override { return control_->TakeFdBatch(); }

 private:
  // flags_ bits: things that end the connection for this side.
  static constexpr uint32_t kShutDown = 1;  // Shutdown() or the destructor
  static constexpr uint32_t kPeerGone = 2;  // the control channel reported the peer lost
  static constexpr uint32_t kBroken = 4;    // the region was found corrupted

  enum class SpinResult { kReady, kBudgetSpent, kCutShort };

  // A waiting role (reading, or writing into a full ring), used by one thread.
  struct Waiter {
    Waiter(WaitPoint point, absl::Duration max_spin) : point(point), spin(max_spin) {}
    WaitPoint point;
    AdaptiveSpin spin;
  };

  ShmRingTransport(ShmRegion region, int side, std::unique_ptr<ControlChannel> control,
                   absl::Duration max_spin);

  // UNAVAILABLE once shut down, DATA_LOSS once broken or if the magic changed.
  absl::Status CheckUsable();
  bool PeerClosed() const {
    return (flags_.load(std::memory_order_acquire) & kPeerGone) != 0 ||
           peer_side_.closed.load(std::memory_order_acquire) != 0;
  }
  // The peer closed its side in the region, or the channel lost it.
  absl::Status PeerClosedError() const { return control_->PeerClosedStatus(); }
  // Validated byte counts: readable in the incoming ring; free in the
  // outgoing one (the tail is re-read only if fewer than `wanted` seem free).
  absl::StatusOr<uint64_t> Readable();
  absl::StatusOr<uint64_t> Writable(uint64_t wanted);
  // Marks this side broken for good and returns the (first) DATA_LOSS status.
  absl::Status Corrupted(absl::string_view what);

  // Conditions a waiting reader / writer wakes up for.
  bool ReadReady() const;
  bool WriteReady() const;
  // DEADLINE_EXCEEDED (with `deadline_message`) if `deadline` has passed;
  // otherwise spins, then sleeps, until `ready()`, a wake-up, or `deadline`,
  // and returns OK for the caller to look again.
  template <typename Ready>
  absl::Status Wait(Waiter& waiter, const Ready& ready, absl::Time deadline,
                    absl::string_view deadline_message);
  // Spins for up to min(budget_ns, left_ns).
  template <typename Ready>
  SpinResult Spin(const Ready& ready, int64_t budget_ns, int64_t left_ns) const;

  void PublishCpu();
  void WakeOwnWaiters();

  // The region and views into it (all point into region_'s mapping).
  ShmRegion region_;
  ShmSide& own_side_;
  ShmSide& peer_side_;
  ShmRingControl& in_;   // the ring this side reads
  ShmRingControl& out_;  // the ring this side writes
  char* const in_data_;
  char* const out_data_;
  const uint64_t capacity_;
  const uint64_t mask_;

  // Wake-ups this side issues to the peer.
  WaitPoint peer_reader_;  // after publishing head
  WaitPoint peer_writer_;  // after publishing tail

  // Reader state (the thread in Read only).
  alignas(64) uint64_t tail_ = 0;  // bytes read; the truth for in_.tail
  uint64_t head_seen_ = 0;         // the incoming head last validated
  Waiter reader_;
  // Writer state (the thread in Write only).
  alignas(64) uint64_t head_ = 0;  // bytes written; the truth for out_.head
  uint64_t tail_seen_ = 0;         // the outgoing tail last validated
  Waiter writer_;

  alignas(64) std::atomic<uint32_t> flags_{0};
  std::atomic<bool> interrupted_{false};
  internal::Mutex mu_;
  absl::Status broken_status_ ABSL_GUARDED_BY(mu_);

  // The unix socket the connection started on, watched by the channel's
  // thread (a futex sleep cannot also poll a socket).
  const std::unique_ptr<ControlChannel> control_;
  const std::string description_;
};

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_RING_TRANSPORT_H_
