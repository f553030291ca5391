// ipcrpc fifo transport: the FIFOs on disk — the server's private directory
// and the client's checks of what it was offered.
//
// Server: CreateFifoFiles makes PARENT/ipcrpc-fifo-RANDOM (mode 0700) with
// two FIFOs in it, c2s and s2c (mode 0600, whatever the umask). A FifoFiles
// removes both names and the directory when destroyed (or on Remove()); open
// ends keep working, since a FIFO, once open, needs no name.
//
// Client: OpenOfferedFifo opens an offered path only if its directory is a
// real directory of the server's uid that nobody else can write to and the
// path is a FIFO (not a symbolic link) of the server's uid — checked before
// the open, so nothing else is ever opened, and on the open file again, so a
// swap in between is caught. docs/transports/fifo.md explains the threat.
//
// Thread-safety: free functions may be called from any thread; a FifoFiles
// is used by one thread.
//
// Example:
//   IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<FifoFiles> files,
//                           CreateFifoFiles(options.parent_dir));   // server
//   IPCRPC_ASSIGN_OR_RETURN(ScopedFd fd,
//                           OpenOfferedFifo(path, O_WRONLY, server_uid));   // client

#ifndef IPCRPC_TRANSPORTS_FIFO_FIFO_FILES_H_
#define IPCRPC_TRANSPORTS_FIFO_FIFO_FILES_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/scoped_fd.h"
#include "transports/upgrade.h"

namespace ipcrpc::fifo {

// Like ErrnoStatus, but a path that does not exist is NOT_FOUND (a missing
// directory or FIFO is a set-up error, not a transient one).
absl::Status PathErrorStatus(int error_number, absl::string_view what);

// The server's directory and FIFOs, removed when this object is destroyed.
class FifoFiles {
 public:
  // Names only; CreateFifoFiles makes the files.
  explicit FifoFiles(std::string dir);
  ~FifoFiles() { Remove(); }
  FifoFiles(const FifoFiles&) = delete;
  FifoFiles& operator=(const FifoFiles&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& client_to_server() const { return client_to_server_; }
  const std::string& server_to_client() const { return server_to_client_; }

  // Unlinks both FIFOs (whichever exist) and removes the directory. Open
  // ends keep working: a FIFO, once open, needs no name.
  void Remove();

 private:
  std::string dir_;
  std::string client_to_server_;
  std::string server_to_client_;
  bool removed_ = false;
};

// Makes `parent_dir`/ipcrpc-fifo-<12 random characters> (mode 0700) and in it
// the FIFOs c2s and s2c (0600). On failure whatever was made is removed again.
// The directory's name is reported to `created` (if not null) just before the
// mkdir, so that it is on record whenever it exists.
absl::StatusOr<std::unique_ptr<FifoFiles>> CreateFifoFiles(const std::string& parent_dir,
                                                           CreatedObjects* created = nullptr);

// Checks `path` (offered by a server running as `server_uid`) and opens it
// with `flags` (O_RDONLY or O_WRONLY; O_NONBLOCK, O_CLOEXEC and O_NOFOLLOW
// are added).
absl::StatusOr<ScopedFd> OpenOfferedFifo(const std::string& path, int flags, uid_t server_uid);

}  // namespace ipcrpc::fifo

#endif  // IPCRPC_TRANSPORTS_FIFO_FIFO_FILES_H_
