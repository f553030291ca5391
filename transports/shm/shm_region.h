// ipcrpc shm transport: the shared-memory region behind a connection.
//
// A ShmRegion is one memfd laid out as ring_layout.h describes, mapped
// read-write and shared. The server Create()s it: memfd_create (no name in
// /dev/shm or anywhere else), size it, commit its memory, seal it
// (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: nobody can truncate it under a
// mapping, so no SIGBUS), map and initialise it. The client Attach()es to a
// memfd it received: it checks that the fd is a sealed memfd of exactly the
// expected size before mapping it, and the header's immutable fields after.
//
// The mapping is removed by the destructor; the memfd is closed by
// CloseMemfd() or the destructor. The memory is freed by the kernel once
// both processes have done both.
//
// Thread-safety: header() and ring_data() may be used from any thread; the
// rest by one thread.
//
// Example:
//   IPCRPC_ASSIGN_OR_RETURN(ShmRegion region, ShmRegion::Create(1 << 20, kWakeFutex));
//   send(region.memfd());  ...  region.CloseMemfd();

#ifndef IPCRPC_TRANSPORTS_SHM_SHM_REGION_H_
#define IPCRPC_TRANSPORTS_SHM_SHM_REGION_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "base/scoped_fd.h"
#include "transports/shm/ring_layout.h"

namespace ipcrpc::shm {

class ShmRegion {
 public:
  // Server side. `ring_bytes` must satisfy IsValidRingBytes and `wake` be
  // kWakeFutex or kWakeSemaphore (the caller validates; INVALID_ARGUMENT
  // otherwise). Initialises the semaphores in SEMAPHORE mode.
  static absl::StatusOr<ShmRegion> Create(uint64_t ring_bytes, uint32_t wake);

  // Client side: takes `memfd` and checks it (FAILED_PRECONDITION naming the
  // problem: not a memfd, seals missing, wrong size, bad magic/version, a
  // header that disagrees with `ring_bytes` / `wake`).
  static absl::StatusOr<ShmRegion> Attach(ScopedFd memfd, uint64_t ring_bytes, uint32_t wake);

  ShmRegion(ShmRegion&& other) noexcept;
  ShmRegion& operator=(ShmRegion&& other) noexcept;
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  ~ShmRegion();

  ShmHeader& header() const { return *static_cast<ShmHeader*>(base_); }
  char* ring_data(int index) const {
    return static_cast<char*>(base_) + RingDataOffset(index, ring_bytes_);
  }
  uint64_t ring_bytes() const { return ring_bytes_; }
  // kWakeFutex or kWakeSemaphore, as validated (not re-read from the region).
  uint32_t wake() const { return wake_; }

  // The memfd (-1 once closed); the mapping does not need it.
  int memfd() const { return memfd_.get(); }
  void CloseMemfd() { memfd_.reset(); }

 private:
  ShmRegion(ScopedFd memfd, void* base, uint64_t ring_bytes, uint32_t wake)
      : memfd_(std::move(memfd)), base_(base), ring_bytes_(ring_bytes), wake_(wake) {}
  void Unmap();

  ScopedFd memfd_;
  void* base_ = nullptr;  // mapping of RegionBytes(ring_bytes_) bytes
  uint64_t ring_bytes_ = 0;
  uint32_t wake_ = 0;
};

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_SHM_REGION_H_
