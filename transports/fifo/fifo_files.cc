// ipcrpc fifo transport: the server's private directory and FIFOs, and the
// client's ownership checks of offered paths (fifo_files.h).

#include "transports/fifo/fifo_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace ipcrpc::fifo {
namespace {

constexpr char kClientToServerName[] = "c2s";
constexpr char kServerToClientName[] = "s2c";

const char* FileTypeName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  return "of an unknown type";
}

constexpr char kDirectoryPrefix[] = "ipcrpc-fifo-";

// 12 characters of [A-Za-z0-9_-] from getrandom(2): 72 random bits.
absl::StatusOr<std::string> RandomDirectorySuffix() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  unsigned char bytes[12];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "fifo: getrandom");
    got += static_cast<size_t>(n);
  }
  std::string suffix(sizeof(bytes), '\0');
  for (size_t i = 0; i < sizeof(bytes); ++i) suffix[i] = kAlphabet[bytes[i] % 64];
  return suffix;
}

absl::Status MakeFifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0600) < 0) return PathErrorStatus(errno, "fifo: mkfifo " + path);
  // The umask may have taken bits away; the client needs exactly 0600.
  if (::chmod(path.c_str(), 0600) < 0) return ErrnoStatus(errno, "fifo: chmod " + path);
  return absl::OkStatus();
}

// The directory holding an offered FIFO must be a real directory of the
// server's user that nobody else can write to, or the FIFO could be swapped.
absl::Status CheckOfferedDirectory(const std::string& dir, uid_t server_uid) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) return PathErrorStatus(errno, "fifo: lstat " + dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fifo: offered directory ", dir, " is ", FileTypeName(st.st_mode), ", not a directory"));
  }
  if (st.st_uid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat("fifo: offered directory ", dir,
                                                    " is owned by uid ", st.st_uid,
                                                    ", but the server runs as uid ", server_uid));
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "fifo: offered directory ", dir, " is writable by other users (mode ",
        absl::StrFormat("%04o", st.st_mode & 07777), "); refusing to use it"));
  }
  return absl::OkStatus();
}

absl::Status CheckOfferedFifo(const std::string& path, const struct stat& st,
                              uid_t server_uid) {
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("fifo: offered path ", path, " is a symbolic link; refusing to follow it"));
  }
  if (!S_ISFIFO(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("fifo: offered path ", path, " is ",
                                                      FileTypeName(st.st_mode),
                                                      ", not a FIFO"));
  }
  if (st.st_uid != server_uid) {
    return absl::PermissionDeniedError(absl::StrCat("fifo: offered FIFO ", path,
                                                    " is owned by uid ", st.st_uid,
                                                    ", but the server runs as uid ", server_uid));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PathErrorStatus(int error_number, absl::string_view what) {
  absl::Status s = ErrnoStatus(error_number, what);
  if (error_number == ENOENT) return absl::NotFoundError(s.message());
  return s;
}

FifoFiles::FifoFiles(std::string dir)
    : dir_(std::move(dir)),
      client_to_server_(absl::StrCat(dir_, "/", kClientToServerName)),
      server_to_client_(absl::StrCat(dir_, "/", kServerToClientName)) {}

void FifoFiles::Remove() {
  if (removed_) return;
  removed_ = true;
  ::unlink(client_to_server_.c_str());
  ::unlink(server_to_client_.c_str());
  ::rmdir(dir_.c_str());
}

absl::StatusOr<std::unique_ptr<FifoFiles>> CreateFifoFiles(const std::string& parent_dir,
                                                           CreatedObjects* created) {
  // Not mkdtemp: the directory is reported before it exists, so that a server
  // killed right after the mkdir still has it on record. A name reported but
  // never made is harmless (the sweep finds nothing there).
  std::string dir;
  for (int attempt = 0;; ++attempt) {
    IPCRPC_ASSIGN_OR_RETURN(std::string suffix, RandomDirectorySuffix());
    dir = absl::StrCat(parent_dir, "/", kDirectoryPrefix, suffix);
    if (created != nullptr) created->FifoDirectory(dir);
    if (::mkdir(dir.c_str(), 0700) == 0) break;
    // EEXIST only if 72 random bits repeat a name that exists: try again.
    if (errno != EEXIST || attempt == 3) {
      return PathErrorStatus(errno, "fifo: mkdir in " + parent_dir);
    }
  }
  // From here on every return removes whatever exists.
  auto files = std::make_unique<FifoFiles>(dir);
  if (::chmod(dir.c_str(), 0700) < 0) return ErrnoStatus(errno, "fifo: chmod " + dir);
  IPCRPC_RETURN_IF_ERROR(MakeFifo(files->client_to_server()));
  IPCRPC_RETURN_IF_ERROR(MakeFifo(files->server_to_client()));
  return files;
}

absl::StatusOr<ScopedFd> OpenOfferedFifo(const std::string& path, int flags, uid_t server_uid) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("fifo: offered path \"", path, "\" is not absolute"));
  }
  std::string dir = path.substr(0, path.rfind('/'));
  IPCRPC_RETURN_IF_ERROR(CheckOfferedDirectory(dir.empty() ? "/" : dir, server_uid));
  struct stat before;
  if (::lstat(path.c_str(), &before) < 0) {
    return PathErrorStatus(errno, "fifo: offered path " + path);
  }
  IPCRPC_RETURN_IF_ERROR(CheckOfferedFifo(path, before, server_uid));
  ScopedFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENXIO) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fifo: ", path, " has no reader: the server must open its end before offering it"));
    }
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat("fifo: offered path ", path, " is a symbolic link; refusing to follow it"));
    }
    return PathErrorStatus(errno, "fifo: open " + path);
  }
  struct stat after;
  if (::fstat(fd.get(), &after) < 0) return ErrnoStatus(errno, "fifo: fstat " + path);
  IPCRPC_RETURN_IF_ERROR(CheckOfferedFifo(path, after, server_uid));
  if (after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
    return absl::FailedPreconditionError(
        absl::StrCat("fifo: offered FIFO ", path, " was replaced while being opened"));
  }
  return fd;
}

}  // namespace ipcrpc::fifo
