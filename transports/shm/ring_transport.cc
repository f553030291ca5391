// ipcrpc shm transport: ShmRingTransport (ring_transport.h) — validating the
// ring counters, copying bytes in and out, spinning and sleeping, shutdown.

#include "transports/shm/ring_transport.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ipcrpc::shm {
namespace {

// A writer publishes its head, and a reader its tail, at least every this
// many bytes: on a large write the two copy side by side instead of taking
// turns, one ring-full at a time.
constexpr uint64_t kPublishBytes = 64 << 10;

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int64_t MonotonicNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// The ring a side reads (it writes the other one).
int InRing(int side) {
  return side == shm::kServerSide ? shm::kClientToServerRing : shm::kServerToClientRing;
}

sem_t* SemaphoreIfUsed(const ShmRegion& region, sem_t* semaphore) {
  return region.wake() == shm::kWakeSemaphore ? semaphore : nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> ShmRingTransport::Create(ShmRegion region, int side,
                                                                    ScopedFd control_socket,
                                                                    absl::Duration max_spin) {
  std::string description =
      absl::StrCat(TransportName(region.wake()), ":",
                   side == shm::kServerSide ? "server" : "client",
                   " ring_bytes=", region.ring_bytes(), " control_fd=", control_socket.get());
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ControlChannel> control,
                          ControlChannel::Open(std::move(control_socket), std::move(description)));
  std::unique_ptr<ShmRingTransport> transport(
      new ShmRingTransport(std::move(region), side, std::move(control), max_spin));
  ControlChannel::WatchHooks hooks;
  hooks.on_peer_lost = [raw = transport.get()] {
    raw->flags_.fetch_or(kPeerGone, std::memory_order_acq_rel);
    raw->WakeOwnWaiters();
  };
  // On failure the destructor marks this side closed: the peer sees it go.
  IPCRPC_RETURN_IF_ERROR(transport->control_->StartWatcher(std::move(hooks)));
  return std::unique_ptr<Transport>(std::move(transport));
}

ShmRingTransport::ShmRingTransport(ShmRegion region, int side,
                                   std::unique_ptr<ControlChannel> control,
                                   absl::Duration max_spin)
    : region_(std::move(region)),
      own_side_(region_.header().side[side]),
      peer_side_(region_.header().side[1 - side]),
      in_(region_.header().ring[InRing(side)]),
      out_(region_.header().ring[1 - InRing(side)]),
      in_data_(region_.ring_data(InRing(side))),
      out_data_(region_.ring_data(1 - InRing(side))),
      capacity_(region_.ring_bytes()),
      mask_(region_.ring_bytes() - 1),
      peer_reader_(&out_.reader_sleeping, SemaphoreIfUsed(region_, &out_.data_ready)),
      peer_writer_(&in_.writer_sleeping, SemaphoreIfUsed(region_, &in_.space_ready)),
      reader_(WaitPoint(&in_.reader_sleeping, SemaphoreIfUsed(region_, &in_.data_ready)),
              max_spin),
      writer_(WaitPoint(&out_.writer_sleeping, SemaphoreIfUsed(region_, &out_.space_ready)),
              max_spin),
      control_(std::move(control)),
      description_(control_->description()) {
  // The counters start at whatever the region says (0 for a new region);
  // validated like everything else on first use.
  tail_ = head_seen_ = in_.tail.load(std::memory_order_acquire);
  head_ = tail_seen_ = out_.head.load(std::memory_order_acquire);
}

ShmRingTransport::~ShmRingTransport() {
  Shutdown();
  control_->StopWatcher();  // its hook points here
  // region_ unmaps; the channel closes the control socket.
}

absl::Status ShmRingTransport::CheckUsable() {
  uint32_t flags = flags_.load(std::memory_order_acquire);
  if (flags & kShutDown) {
    return absl::UnavailableError(absl::StrCat(description_, ": the transport was shut down"));
  }
  if (flags & kBroken) {
    internal::MutexLock lock(&mu_);
    return broken_status_;
  }
  if (__atomic_load_n(&region_.header().magic, __ATOMIC_RELAXED) != shm::kMagic) {
    return Corrupted("the region's magic number was overwritten");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ShmRingTransport::Readable() {
  uint64_t head = in_.head.load(std::memory_order_acquire);
  uint64_t tail = in_.tail.load(std::memory_order_relaxed);
  if (tail != tail_) {
    return Corrupted(absl::StrCat("the incoming ring's tail is ", tail, ", this side read ",
                                  tail_, " bytes"));
  }
  // head_seen_ >= tail_, so this also rejects head < tail.
  if (head < head_seen_ || head - tail_ > capacity_) {
    return Corrupted(absl::StrCat("the incoming ring's head ", head, " is impossible (tail ",
                                  tail_, ", last head ", head_seen_, ", capacity ", capacity_,
                                  ")"));
  }
  head_seen_ = head;
  return head - tail_;
}

absl::StatusOr<uint64_t> ShmRingTransport::Writable(uint64_t wanted) {
  uint64_t head = out_.head.load(std::memory_order_relaxed);
  if (head != head_) {
    return Corrupted(absl::StrCat("the outgoing ring's head is ", head, ", this side wrote ",
                                  head_, " bytes"));
  }
  // The tail last seen is a lower bound of the tail: if it leaves room
  // enough, the consumer's cache line is left alone.
  uint64_t free = capacity_ - (head_ - tail_seen_);
  if (free >= wanted) return free;
  uint64_t tail = out_.tail.load(std::memory_order_acquire);
  // Then head_ - tail <= capacity_ holds, as head_ - tail_seen_ did.
  if (tail < tail_seen_ || tail > head_) {
    return Corrupted(absl::StrCat("the outgoing ring's tail ", tail, " is impossible (head ",
                                  head_, ", last tail ", tail_seen_, ")"));
  }
  tail_seen_ = tail;
  return capacity_ - (head_ - tail);
}

absl::Status ShmRingTransport::Corrupted(absl::string_view what) {
  absl::Status status;
  {
    internal::MutexLock lock(&mu_);
    if (broken_status_.ok()) {
      broken_status_ =
          absl::DataLossError(absl::StrCat(description_, ": shared memory corrupted: ", what));
    }
    status = broken_status_;
  }
  flags_.fetch_or(kBroken, std::memory_order_acq_rel);
  WakeOwnWaiters();
  return status;
}

absl::Status ShmRingTransport::Write(absl::Span<const absl::string_view> chunks,
                                     absl::Time deadline) {
  uint64_t remaining = 0;
  for (absl::string_view c : chunks) remaining += c.size();
  if (remaining == 0) return absl::OkStatus();
  size_t chunk = 0;   // the next byte to copy is chunks[chunk][offset]
  size_t offset = 0;
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckUsable());
    if (PeerClosed()) return PeerClosedError();
    IPCRPC_ASSIGN_OR_RETURN(uint64_t writable, Writable(std::min(remaining, capacity_)));
    if (writable == 0) {
      IPCRPC_RETURN_IF_ERROR(Wait(writer_, [this] { return WriteReady(); }, deadline,
                                  "deadline exceeded while the ring was full"));
      continue;
    }
    // Copy as much as fits, publishing the head every kPublishBytes: the
    // reader starts copying out while the rest is copied in.
    uint64_t batch = std::min(writable, remaining);
    uint64_t published = 0;
    for (uint64_t copied = 0; copied < batch;) {
      absl::string_view c = chunks[chunk].substr(offset);
      size_t n = static_cast<size_t>(
          std::min<uint64_t>({c.size(), batch - copied, published + kPublishBytes - copied}));
      uint64_t pos = (head_ + copied) & mask_;
      size_t first = static_cast<size_t>(std::min<uint64_t>(n, capacity_ - pos));
      // An empty chunk may have a null data(): memcpy must not see it.
      if (first > 0) std::memcpy(out_data_ + pos, c.data(), first);
      if (n > first) std::memcpy(out_data_, c.data() + first, n - first);
      copied += n;
      offset += n;
      if (offset == chunks[chunk].size()) {
        ++chunk;
        offset = 0;
      }
      if (copied - published == kPublishBytes || copied == batch) {
        out_.head.store(head_ + copied, std::memory_order_release);
        peer_reader_.WakeIfSleeping();
        published = copied;
      }
    }
    head_ += batch;
    remaining -= batch;
    if (remaining == 0) {
      PublishCpu();
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<size_t> ShmRingTransport::Read(absl::Span<char> buffer, absl::Time deadline) {
  if (buffer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(description_, ": empty read buffer"));
  }
  for (;;) {
    IPCRPC_RETURN_IF_ERROR(CheckUsable());
    // Before the ring: bytes written before the peer closed are still read.
    bool peer_closed = PeerClosed();
    IPCRPC_ASSIGN_OR_RETURN(uint64_t readable, Readable());
    if (readable > 0) {
      // Copied out kPublishBytes at a time, each piece's space given back at
      // once: a writer waiting for room refills behind this copy.
      size_t n = static_cast<size_t>(std::min<uint64_t>(readable, buffer.size()));
      for (size_t done = 0; done < n;) {
        size_t piece = static_cast<size_t>(std::min<uint64_t>(n - done, kPublishBytes));
        uint64_t pos = tail_ & mask_;
        size_t first = static_cast<size_t>(std::min<uint64_t>(piece, capacity_ - pos));
        std::memcpy(buffer.data() + done, in_data_ + pos, first);
        if (piece > first) std::memcpy(buffer.data() + done + first, in_data_, piece - first);
        tail_ += piece;
        done += piece;
        in_.tail.store(tail_, std::memory_order_release);
        peer_writer_.WakeIfSleeping();
      }
      PublishCpu();
      return n;
    }
    if (peer_closed) return PeerClosedError();
    if (interrupted_.exchange(false, std::memory_order_acq_rel)) {
      return absl::AbortedError(absl::StrCat(description_, ": read interrupted"));
    }
    IPCRPC_RETURN_IF_ERROR(
        Wait(reader_, [this] { return ReadReady(); }, deadline, "deadline exceeded"));
  }
}

bool ShmRingTransport::ReadReady() const {
  return in_.head.load(std::memory_order_acquire) != tail_ ||
         flags_.load(std::memory_order_acquire) != 0 ||
         interrupted_.load(std::memory_order_acquire) ||
         peer_side_.closed.load(std::memory_order_acquire) != 0;
}

bool ShmRingTransport::WriteReady() const {
  return out_.tail.load(std::memory_order_acquire) != tail_seen_ ||
         flags_.load(std::memory_order_acquire) != 0 ||
         peer_side_.closed.load(std::memory_order_acquire) != 0;
}

template <typename Ready>
absl::Status ShmRingTransport::Wait(Waiter& waiter, const Ready& ready, absl::Time deadline,
                                    absl::string_view deadline_message) {
  // absl::Now() costs ~0.1 us here: once per wait, never for no deadline.
  int64_t left_ns = std::numeric_limits<int64_t>::max();
  if (deadline != absl::InfiniteFuture()) {
    left_ns = absl::ToInt64Nanoseconds(deadline - absl::Now());
    if (left_ns <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(description_, ": ", deadline_message));
    }
  }
  int64_t budget_ns = waiter.spin.NextBudgetNs();
  if (budget_ns > 0) {
    switch (Spin(ready, budget_ns, left_ns)) {
      case SpinResult::kReady:
        waiter.spin.Record(/*hit=*/true);
        return absl::OkStatus();
      case SpinResult::kBudgetSpent:
        waiter.spin.Record(/*hit=*/false);
        break;
      case SpinResult::kCutShort:
        break;
    }
  }
  waiter.point.AnnounceSleep();
  absl::Status status = ready() ? absl::OkStatus() : waiter.point.Sleep(deadline);
  waiter.point.EndSleep();
  if (absl::IsDataLoss(status)) return Corrupted(status.message());
  return status;
}

template <typename Ready>
ShmRingTransport::SpinResult ShmRingTransport::Spin(const Ready& ready, int64_t budget_ns,
                                                    int64_t left_ns) const {
  // Spinning while the peer last ran on this CPU only keeps it off the CPU.
  const int cpu = ::sched_getcpu();
  auto peer_here = [&] {
    return cpu >= 0 && peer_side_.cpu.load(std::memory_order_relaxed) == cpu;
  };
  if (peer_here()) return SpinResult::kCutShort;
  const bool cut_by_deadline = left_ns < budget_ns;
  const int64_t end = MonotonicNs() + std::min(budget_ns, left_ns);
  for (uint32_t i = 1;; ++i) {
    if (ready()) return SpinResult::kReady;
    CpuRelax();
    if (i % 16 == 0) {
      if (peer_here()) return SpinResult::kCutShort;
      if (MonotonicNs() >= end) {
        return cut_by_deadline ? SpinResult::kCutShort : SpinResult::kBudgetSpent;
      }
    }
  }
}

void ShmRingTransport::PublishCpu() {
  int cpu = ::sched_getcpu();
  // Store only on change: the peer polls this line while it spins.
  if (own_side_.cpu.load(std::memory_order_relaxed) != cpu) {
    own_side_.cpu.store(cpu, std::memory_order_relaxed);
  }
}

void ShmRingTransport::Interrupt() {
  interrupted_.store(true, std::memory_order_seq_cst);
  reader_.point.WakeIfSleeping();
}

void ShmRingTransport::WakeOwnWaiters() {
  reader_.point.WakeIfSleeping();
  writer_.point.WakeIfSleeping();
}

void ShmRingTransport::Shutdown() {
  if (flags_.fetch_or(kShutDown, std::memory_order_acq_rel) & kShutDown) return;
  own_side_.closed.store(1, std::memory_order_release);
  peer_reader_.WakeIfSleeping();
  peer_writer_.WakeIfSleeping();
  WakeOwnWaiters();
  control_->Shutdown();  // the peer's watcher sees end-of-file
}

}  // namespace ipcrpc::shm
