// ipcrpc msgq transport: creating, checking and removing the SysV queues
// (queues.h).

#include "transports/msgq/queues.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/scoped_fd.h"

namespace ipcrpc {
namespace msgq {

absl::StatusOr<size_t> ReadKernelLimit(const char* path) {
  ScopedFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  char buf[32];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
  size_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(buf, static_cast<size_t>(n)), &value) ||
      value == 0) {
    return absl::InternalError(absl::StrCat(path, " does not hold a positive number"));
  }
  return value;
}

size_t ClampFragment(size_t requested, size_t msgmax, size_t queue_bytes) {
  size_t fragment = requested == 0 ? msgmax : std::min(requested, msgmax);
  return std::min(fragment, queue_bytes);
}

absl::StatusOr<int> CreateQueue() {
  int id = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (id < 0) {
    absl::Status s = ErrnoStatus(errno, "msgget(IPC_PRIVATE)");
    if (errno == ENOSPC) {
      return absl::ResourceExhaustedError(
          absl::StrCat(s.message(), " (the system's msgmni queue limit is reached)"));
    }
    return s;
  }
  return id;
}

void RemoveQueue(int id) { ::msgctl(id, IPC_RMID, nullptr); }

bool QueueHoldsData(int id) {
  msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) < 0) return false;
  return ds.__msg_cbytes > 0;  // glibc's name for the kernel's msg_cbytes
}

absl::StatusOr<msqid_ds> ValidateOfferedQueue(int id, absl::string_view which,
                                              uid_t server_uid) {
  std::string name = absl::StrCat("msgq: offered ", which, " queue ", id);
  if (id < 0) return absl::InvalidArgumentError(absl::StrCat(name, " is not a queue id"));
  msqid_ds ds;
  if (::msgctl(id, IPC_STAT, &ds) < 0) {
    int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::NotFoundError(absl::StrCat(name, " does not exist"));
    }
    if (err == EACCES) {
      return absl::PermissionDeniedError(absl::StrCat(
          name, " is not accessible to uid ", ::geteuid(),
          " (the msgq transport needs both processes to run as the same user)"));
    }
    return ErrnoStatus(err, absl::StrCat(name, ": IPC_STAT"));
  }
  unsigned mode = ds.msg_perm.mode & 0777;
  if (mode != 0600) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s has mode %04o; expected 0600", name, mode));
  }
  if (ds.msg_perm.uid != server_uid || ds.msg_perm.cuid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        name, " is owned by uid ", ds.msg_perm.uid, " and was created by uid ",
        ds.msg_perm.cuid, "; the server runs as uid ", server_uid));
  }
  if (ds.msg_perm.__key != IPC_PRIVATE) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " has key ", ds.msg_perm.__key, "; expected IPC_PRIVATE"));
  }
  if (ds.msg_qbytes == 0) {
    return absl::FailedPreconditionError(absl::StrCat(name, " can hold no bytes"));
  }
  return ds;
}

}  // namespace msgq
}  // namespace ipcrpc
