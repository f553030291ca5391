#include "transports/shm/shm_region.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <new>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ipcrpc::shm {
namespace {

constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
// MFD_NOEXEC_SEAL, missing from older kernel headers.
constexpr unsigned kMfdNoExecSeal = 0x0008U;

absl::StatusOr<void*> MapShared(int fd, uint64_t bytes) {
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return ErrnoStatus(errno, "mmap of the shared-memory region");
  return base;
}

// The header's immutable fields, as the server wrote them.
absl::Status CheckHeader(const ShmHeader& h, uint64_t ring_bytes, uint32_t wake) {
  if (h.magic != kMagic) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "shared-memory region has magic 0x%016x, expected 0x%016x (not an ipcrpc ring)",
        h.magic, kMagic));
  }
  if (h.version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory region has layout version ", h.version, ", this side speaks ", kVersion));
  }
  if (h.header_bytes != kHeaderBytes || h.ring_bytes != ring_bytes || h.wake != wake) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory header (header_bytes ", h.header_bytes, ", ring_bytes ", h.ring_bytes,
        ", wake ", h.wake, ") disagrees with the offer (", kHeaderBytes, ", ", ring_bytes, ", ",
        wake, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ShmRegion> ShmRegion::Create(uint64_t ring_bytes, uint32_t wake) {
  if (!IsValidRingBytes(ring_bytes) || (wake != kWakeFutex && wake != kWakeSemaphore)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad shared-memory region parameters: ring_bytes ", ring_bytes, ", wake ",
                     wake));
  }
  const uint64_t bytes = RegionBytes(ring_bytes);
  // Never executable (Linux >= 6.3; required where vm.memfd_noexec = 2);
  // older kernels reject the flag with EINVAL.
  ScopedFd fd(::memfd_create("ipcrpc-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdNoExecSeal));
  if (!fd.valid() && errno == EINVAL) {
    fd.reset(::memfd_create("ipcrpc-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  }
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) < 0) {
    return ErrnoStatus(errno, absl::StrCat("ftruncate of the memfd to ", bytes, " bytes"));
  }
  // Commit the memory now: a page the kernel cannot supply later would be a
  // SIGBUS on first touch instead of an error here.
  int rc;
  do {
    rc = ::fallocate(fd.get(), 0, 0, static_cast<off_t>(bytes));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EOPNOTSUPP) {
    return ErrnoStatus(errno, absl::StrCat("allocating ", bytes, " bytes of shared memory"));
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals) < 0) {
    return ErrnoStatus(errno, "sealing the memfd");
  }
  absl::StatusOr<void*> base = MapShared(fd.get(), bytes);
  if (!base.ok()) return base.status();
  ShmRegion region(std::move(fd), *base, ring_bytes, wake);

  // The memfd is zero-filled; this starts the objects' lifetimes.
  ShmHeader& h = *new (*base) ShmHeader();
  h.magic = kMagic;
  h.version = kVersion;
  h.header_bytes = kHeaderBytes;
  h.ring_bytes = ring_bytes;
  h.wake = wake;
  for (ShmSide& side : h.side) side.cpu.store(-1, std::memory_order_relaxed);
  h.side[kServerSide].attached.store(1, std::memory_order_relaxed);
  if (wake == kWakeSemaphore) {
    for (ShmRingControl& ring : h.ring) {
      if (::sem_init(&ring.data_ready, /*pshared=*/1, 0) < 0 ||
          ::sem_init(&ring.space_ready, /*pshared=*/1, 0) < 0) {
        return ErrnoStatus(errno, "sem_init");
      }
    }
  }
  // Published to the client by sending the memfd (a system call): no fence needed.
  return region;
}

absl::StatusOr<ShmRegion> ShmRegion::Attach(ScopedFd memfd, uint64_t ring_bytes,
                                            uint32_t wake) {
  const std::string what = absl::StrCat("fd ", memfd.get());
  struct stat st;
  if (::fstat(memfd.get(), &st) < 0) return ErrnoStatus(errno, absl::StrCat("fstat of ", what));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " is not a memfd (not a regular file)"));
  }
  int seals = ::fcntl(memfd.get(), F_GET_SEALS);
  if (seals < 0) {
    if (errno == EINVAL) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is not a memfd (the file cannot carry seals)"));
    }
    return ErrnoStatus(errno, absl::StrCat("F_GET_SEALS on ", what));
  }
  if ((seals & kRequiredSeals) != kRequiredSeals) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: the memfd lacks seals (has 0x%x; F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL = 0x%x "
        "are required so that it cannot be truncated under the mapping)",
        what, seals, kRequiredSeals));
  }
  const uint64_t bytes = RegionBytes(ring_bytes);
  if (static_cast<uint64_t>(st.st_size) != bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": the memfd is ", st.st_size, " bytes; rings of ", ring_bytes, " bytes need ",
        bytes));
  }
  absl::StatusOr<void*> base = MapShared(memfd.get(), bytes);
  if (!base.ok()) return base.status();
  ShmRegion region(std::move(memfd), *base, ring_bytes, wake);
  absl::Status header = CheckHeader(region.header(), ring_bytes, wake);
  if (!header.ok()) return header;
  return region;
}

ShmRegion::ShmRegion(ShmRegion&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      base_(std::exchange(other.base_, nullptr)),
      ring_bytes_(other.ring_bytes_),
      wake_(other.wake_) {}

ShmRegion& ShmRegion::operator=(ShmRegion&& other) noexcept {
  if (this != &other) {
    Unmap();
    memfd_ = std::move(other.memfd_);
    base_ = std::exchange(other.base_, nullptr);
    ring_bytes_ = other.ring_bytes_;
    wake_ = other.wake_;
  }
  return *this;
}

ShmRegion::~ShmRegion() { Unmap(); }

void ShmRegion::Unmap() {
  if (base_ != nullptr) ::munmap(base_, RegionBytes(ring_bytes_));
  base_ = nullptr;
}

}  // namespace ipcrpc::shm
