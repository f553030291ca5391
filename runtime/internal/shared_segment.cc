#include "runtime/internal/shared_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc::internal {

int RequiredSegmentSeals() { return F_SEAL_SHRINK | F_SEAL_GROW; }

SegmentMapping::~SegmentMapping() { ::munmap(base_, size_); }

absl::StatusOr<OwnedSegment> CreateSegment(size_t size) {
  if (size == 0) return absl::InvalidArgumentError("a shared-buffer segment cannot be empty");
  ScopedFd fd(::memfd_create("ipcrpc-shared-buffer", MFD_ALLOW_SEALING | MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create for a shared-buffer segment");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("sizing a shared-buffer segment to ", size, " bytes"));
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    return ErrnoStatus(errno, "sealing a shared-buffer segment");
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) {
    return ErrnoStatus(errno, absl::StrCat("mapping a shared-buffer segment of ", size, " bytes"));
  }
  // Only this mapping may write: the peer's mappings (and any made later)
  // are read-only and cannot be made writable (mprotect fails), so a hostile
  // receiver cannot change what this process sends (Linux ≥ 5.1).
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0 && errno != EINVAL) {
    const int error = errno;
    ::munmap(base, size);
    return ErrnoStatus(error, "sealing a shared-buffer segment against future writers");
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL) != 0) {
    const int error = errno;
    ::munmap(base, size);
    return ErrnoStatus(error, "sealing a shared-buffer segment's seals");
  }
  OwnedSegment out;
  out.mapping = std::make_shared<SegmentMapping>(static_cast<uint8_t*>(base), size);
  out.fd = std::move(fd);
  return out;
}

absl::StatusOr<std::shared_ptr<const SegmentMapping>> MapPeerSegment(int fd, uint64_t size) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the segment's descriptor is not a memfd that allows sealing (F_GET_SEALS: ",
        errno == EINVAL ? "not a memfd" : strerror(errno), ")"));
  }
  if ((seals & RequiredSegmentSeals()) != RequiredSegmentSeals()) {
    return absl::InvalidArgumentError(
        "the segment's memfd is not sealed against shrinking and growing "
        "(F_SEAL_SHRINK | F_SEAL_GROW)");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat of a peer's segment");
  if (size == 0 || static_cast<uint64_t>(st.st_size) != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the segment's memfd has ", st.st_size, " bytes; its SEGMENT frame announced ", size));
  }
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return ErrnoStatus(errno, absl::StrCat("mapping a peer's segment of ", size, " bytes"));
  }
  return std::shared_ptr<const SegmentMapping>(
      std::make_shared<SegmentMapping>(static_cast<uint8_t*>(base), size));
}

}  // namespace ipcrpc::internal
