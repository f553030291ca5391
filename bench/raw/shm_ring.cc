// Raw mechanisms on shared memory: one single-producer/single-consumer byte
// ring per direction in a memfd mapping shared across fork(), so nothing ever
// appears in /dev/shm. A receiver with nothing to read (or a sender with no
// room) waits in one of three ways:
//
//   kSpinOnly   spins until the other side moves; never sleeps
//   kFutex      spins for up to spin_ns (0: not at all), then sleeps on a
//               futex word shared between the processes (no
//               FUTEX_PRIVATE_FLAG: the word lives in a shared mapping)
//   kSemaphore  sleeps on a process-shared sem_t (spins for up to spin_ns first)
//
// The ring: `head` counts bytes ever written, `tail` bytes ever read; the
// data lives at offset (count % capacity):
//
//     tail            head
//   ...|##############|..........   # = written, not yet read
//
// A sleeper announces itself in its `waiting` word before its last check;
// the other side, after moving head (or tail), wakes it only if that word is
// set (both sides use sequentially consistent operations, so one of them
// always sees the other: no lost wake-up, no system call when nobody sleeps).
// The semaphore variant posts at most once per announced wait.

#include <linux/futex.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/scoped_fd.h"
#include "bench/harness.h"
#include "bench/raw/cleanup.h"
#include "bench/raw/endpoint.h"

namespace raw {
namespace {

static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == 4,
              "a futex word must be a plain 32-bit integer");

// Most bytes copied before the other side is told: a large message flows
// through the ring in pieces, so reader and writer copy in parallel.
constexpr size_t kMaxPiece = 64 << 10;
// A sleeper re-checks this often, so a dead peer is noticed (ChildExited).
constexpr long kSleepCheckNanos = 100 * 1000 * 1000;

struct alignas(64) RingControl {
  alignas(64) std::atomic<uint64_t> head;          // written by the producer
  alignas(64) std::atomic<uint64_t> tail;          // written by the consumer
  alignas(64) std::atomic<uint32_t> reader_waiting;  // futex word: consumer sleeps
  alignas(64) std::atomic<uint32_t> writer_waiting;  // futex word: producer sleeps
  alignas(64) sem_t data_ready;                    // kSemaphore: consumer sleeps
  sem_t space_ready;                               // kSemaphore: producer sleeps
};

constexpr size_t kControlBytes = 4096;
static_assert(sizeof(RingControl) <= kControlBytes, "ring control must fit its page");

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

long Futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

// How one side waits for the other.
class Waiter {
 public:
  Waiter(Wake wake, int64_t spin_ns) : wake_(wake), spin_ns_(spin_ns) {}

  // Returns once ready() is true. `waiting` / `sem` are this side's.
  template <class Ready>
  absl::Status Wait(const Ready& ready, std::atomic<uint32_t>* waiting, sem_t* sem) const {
    if (ready()) return absl::OkStatus();
    if (wake_ == Wake::kSpinOnly || spin_ns_ > 0) {
      int64_t deadline = wake_ == Wake::kSpinOnly ? INT64_MAX : bench::NowNanos() + spin_ns_;
      for (uint32_t i = 1;; ++i) {
        CpuRelax();
        if (ready()) return absl::OkStatus();
        if ((i & 63) == 0) {  // ~64 pauses: a few microseconds
          if (cleanup::ChildExited()) return PeerGone();
          if (bench::NowNanos() >= deadline) break;
        }
      }
    }
    for (;;) {
      waiting->store(1, std::memory_order_seq_cst);
      if (ready()) {
        // If the other side cleared the word, it has posted (or is about to):
        // take that post so none is left for a later wait.
        if (waiting->exchange(0) == 0 && wake_ == Wake::kSemaphore) SemWait(sem);
        return absl::OkStatus();
      }
      if (cleanup::ChildExited()) return PeerGone();
      if (wake_ == Wake::kFutex) {
        timespec timeout = {0, kSleepCheckNanos};
        Futex(waiting, FUTEX_WAIT, 1, &timeout);  // returns at once unless still 1
      } else if (!SemWait(sem)) {
        continue;  // timed out: look again
      }
    }
  }

  // After moving head or tail: wakes the other side if it sleeps.
  void Notify(std::atomic<uint32_t>* waiting, sem_t* sem) const {
    if (wake_ == Wake::kSpinOnly) return;
    if (waiting->load(std::memory_order_seq_cst) == 0 || waiting->exchange(0) == 0) return;
    if (wake_ == Wake::kFutex) {
      Futex(waiting, FUTEX_WAKE, 1, nullptr);
    } else {
      sem_post(sem);
    }
  }

 private:
  static absl::Status PeerGone() { return absl::UnavailableError("the server process ended"); }

  // false: timed out (or interrupted) without taking a post.
  static bool SemWait(sem_t* sem) {
    timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += kSleepCheckNanos;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec += 1;
      until.tv_nsec -= 1000000000;
    }
    return sem_timedwait(sem, &until) == 0;
  }

  Wake wake_;
  int64_t spin_ns_;
};

// One direction: a RingControl page followed by `capacity` data bytes.
class Ring {
 public:
  Ring(char* base, size_t capacity)
      : control_(reinterpret_cast<RingControl*>(base)),
        data_(base + kControlBytes),
        capacity_(capacity) {}

  absl::Status InitShared(Wake wake) {
    new (control_) RingControl();
    if (wake != Wake::kSemaphore) return absl::OkStatus();
    if (sem_init(&control_->data_ready, /*pshared=*/1, 0) != 0 ||
        sem_init(&control_->space_ready, /*pshared=*/1, 0) != 0) {
      return ipcrpc::ErrnoStatus(errno, "sem_init");
    }
    return absl::OkStatus();
  }

  absl::Status Write(const Waiter& waiter, const char* data, size_t size) {
    uint64_t head = control_->head.load(std::memory_order_relaxed);
    while (size > 0) {
      auto has_room = [&] {
        return head - control_->tail.load(std::memory_order_seq_cst) < capacity_;
      };
      absl::Status status = waiter.Wait(has_room, &control_->writer_waiting, &control_->space_ready);
      if (!status.ok()) return status;
      size_t room = capacity_ - (head - control_->tail.load(std::memory_order_acquire));
      size_t n = std::min({size, room, kMaxPiece});
      CopyIn(head, data, n);
      head += n;
      data += n;
      size -= n;
      control_->head.store(head, std::memory_order_seq_cst);
      waiter.Notify(&control_->reader_waiting, &control_->data_ready);
    }
    return absl::OkStatus();
  }

  // Waits for data, then takes up to `capacity` bytes of what is there.
  absl::StatusOr<size_t> ReadSome(const Waiter& waiter, char* data, size_t capacity) {
    uint64_t tail = control_->tail.load(std::memory_order_relaxed);
    auto has_data = [&] { return control_->head.load(std::memory_order_seq_cst) != tail; };
    absl::Status status = waiter.Wait(has_data, &control_->reader_waiting, &control_->data_ready);
    if (!status.ok()) return status;
    size_t available = control_->head.load(std::memory_order_acquire) - tail;
    size_t n = std::min({capacity, available, kMaxPiece});
    CopyOut(tail, data, n);
    control_->tail.store(tail + n, std::memory_order_seq_cst);
    waiter.Notify(&control_->writer_waiting, &control_->space_ready);
    return n;
  }

  // Copy into / out of the ring at stream offset `at`, in at most two pieces
  // (at the wrap-around).
  void CopyIn(uint64_t at, const char* from, size_t n) {
    size_t offset = at & (capacity_ - 1);
    size_t first = std::min(n, capacity_ - offset);
    std::memcpy(data_ + offset, from, first);
    std::memcpy(data_, from + first, n - first);
  }

  void CopyOut(uint64_t at, char* to, size_t n) const {
    size_t offset = at & (capacity_ - 1);
    size_t first = std::min(n, capacity_ - offset);
    std::memcpy(to, data_ + offset, first);
    std::memcpy(to + first, data_, n - first);
  }

  RingControl* control_;
  char* data_;
  size_t capacity_;
};

// The mapping both processes share (inherited over fork()).
class Mapping {
 public:
  Mapping(char* base, size_t size) : base_(base), size_(size) {}
  ~Mapping() { munmap(base_, size_); }
  char* base() const { return base_; }

 private:
  char* base_;
  size_t size_;
};

class ShmEndpoint final : public Endpoint {
 public:
  ShmEndpoint(std::shared_ptr<Mapping> mapping, Ring out, Ring in, Waiter waiter)
      : mapping_(std::move(mapping)), out_(out), in_(in), waiter_(waiter) {}

  absl::Status Send(const char* data, size_t size) override {
    return out_.Write(waiter_, data, size);
  }
  absl::StatusOr<size_t> ReceiveSome(char* data, size_t capacity) override {
    return in_.ReadSome(waiter_, data, capacity);
  }

 private:
  std::shared_ptr<Mapping> mapping_;
  Ring out_, in_;
  Waiter waiter_;
};

class ShmPair final : public EndpointPair {
 public:
  static absl::StatusOr<std::unique_ptr<EndpointPair>> Create(Wake wake, int64_t spin_ns,
                                                              size_t ring_bytes) {
    if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0) {
      return absl::InvalidArgumentError("ring size must be a power of two >= 4096");
    }
    size_t size = 2 * (kControlBytes + ring_bytes);
    ipcrpc::ScopedFd fd(memfd_create("ipcrpc-bench-shm", MFD_CLOEXEC));
    if (!fd.valid()) return ipcrpc::ErrnoStatus(errno, "memfd_create");
    if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return ipcrpc::ErrnoStatus(errno, "ftruncate");
    }
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (base == MAP_FAILED) return ipcrpc::ErrnoStatus(errno, "mmap");
    auto pair = std::unique_ptr<ShmPair>(new ShmPair(
        std::make_shared<Mapping>(static_cast<char*>(base), size), ring_bytes, Waiter(wake, spin_ns)));
    absl::Status status = pair->to_server_.InitShared(wake);
    if (status.ok()) status = pair->to_client_.InitShared(wake);
    if (!status.ok()) return status;
    return std::unique_ptr<EndpointPair>(std::move(pair));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ClientEnd() override {
    return std::unique_ptr<Endpoint>(
        std::make_unique<ShmEndpoint>(mapping_, to_server_, to_client_, waiter_));
  }

  absl::StatusOr<std::unique_ptr<Endpoint>> ServerEnd() override {
    return std::unique_ptr<Endpoint>(
        std::make_unique<ShmEndpoint>(mapping_, to_client_, to_server_, waiter_));
  }

 private:
  ShmPair(std::shared_ptr<Mapping> mapping, size_t ring_bytes, Waiter waiter)
      : mapping_(std::move(mapping)),
        to_server_(mapping_->base(), ring_bytes),
        to_client_(mapping_->base() + kControlBytes + ring_bytes, ring_bytes),
        waiter_(waiter) {}

  std::shared_ptr<Mapping> mapping_;
  Ring to_server_, to_client_;
  Waiter waiter_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeShmPair(Wake wake, int64_t spin_ns,
                                                          size_t ring_bytes) {
  return ShmPair::Create(wake, spin_ns, ring_bytes);
}

}  // namespace raw
