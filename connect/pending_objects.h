// ipcrpc connect: the IPC objects of negotiations in progress, recorded so
// that a server killed in the middle of one does not leave them for good.
//
// While a server negotiates fifo or msgq with a client (docs/PROTOCOL.md §12)
// it owns objects the kernel keeps until someone removes them: a private FIFO
// directory, a pair of SysV message queues. Once the connection is
// established the transport removes them (at the latest when either side
// dies); before that, only the negotiating server knows about them, so a
// server killed right then (SIGKILL, OOM, a crash) used to leave them behind
// for good — enough of that exhausts the system's queue limit (msgmni).
//
// So the server records each such negotiation in a per-user directory
// (PendingObjectsDir(): $IPCRPC_PENDING_DIR, or /tmp/ipcrpc-pending-EUID,
// mode 0700), as one small file named after its PID namespace and pid,
// created before the objects are and removed again when the negotiation ends
// either way; the transport reports each object the moment the system call
// that made it returns (transports/upgrade.h, CreatedObjects), and the record
// appends it with one write. Every server that starts listening
// (MakeListener) sweeps the directory: records of processes that no longer
// exist (judged only for records made in the sweeper's own PID namespace:
// containers sharing /tmp but not PIDs leave each other alone) are read,
// their objects removed — queues only if this user created
// them with mode 0600, FIFO directories only if this user owns them and they
// are named ipcrpc-fifo-*, and then only the FIFOs inside — and the records
// deleted. The directory is removed whenever it is empty, so it exists only
// while a negotiation is in progress or a dead server's record waits.
//
// The Python server (python/ipcrpc/_pending.py) keeps the same records in
// the same directory and sweeps them the same way, so each language's server
// cleans up after the other's.
//
// To clean up by hand (no server will start again): run any ipcrpc server
// once as the same user, or remove the queues (`ipcrm -q ID`) and
// directories a record names.
//
// Limits: a FIFO directory is recorded just before its mkdir, but a queue
// only just after the msgget that creates it (its id is not known before),
// so a server killed between the two (one system call apart) can still leak
// a queue; a queue id
// reused by the same user's queue of the same mode after a reboot-free
// wrap-around could be removed by a sweep (ids are reused only after the
// kernel has cycled through them).
//
// Thread-safety: every function may be called from any thread.

#ifndef IPCRPC_CONNECT_PENDING_OBJECTS_H_
#define IPCRPC_CONNECT_PENDING_OBJECTS_H_

#include <string>

#include "base/scoped_fd.h"
#include "transports/upgrade.h"

namespace ipcrpc {

// Where the records live (see above).
std::string PendingObjectsDir();

// One negotiation's record: the file is created (empty) by the constructor,
// each object reported to it is appended, and the file is removed when this
// object is destroyed — declare it before the PendingTransport it watches, so
// that a failed negotiation removes the objects before their record. Never
// fails the negotiation: if the directory cannot be used safely (say, another
// user created it), nothing is recorded.
class PendingObjectRecord final : public CreatedObjects {
 public:
  PendingObjectRecord();
  ~PendingObjectRecord();

  void FifoDirectory(const std::string& dir) override;
  void MessageQueue(int id) override;

  PendingObjectRecord(const PendingObjectRecord&) = delete;
  PendingObjectRecord& operator=(const PendingObjectRecord&) = delete;

  // The record's path; empty if nothing was recorded.
  const std::string& path() const { return path_; }

 private:
  void Append(const std::string& line);

  std::string path_;
  ScopedFd file_;  // open for appending while the negotiation runs
};

// Removes the objects recorded by processes that no longer exist, and their
// records. Returns how many records were swept.
int SweepStalePendingObjects();

}  // namespace ipcrpc

#endif  // IPCRPC_CONNECT_PENDING_OBJECTS_H_
