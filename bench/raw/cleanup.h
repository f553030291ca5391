// Raw IPC benchmarks: removing named IPC objects when a run is interrupted.
//
// FIFO files and SysV message queues outlive a process that is killed. The
// raw benchmark's parent records each one here while it exists; on SIGINT,
// SIGTERM or SIGHUP the handler removes them, kills the child (the server
// process) and dies of the same signal. A signal handler can reach only
// process-wide state, so this module is that state: a fixed table, written
// before the objects are shared and read only by the handler. It also notes
// SIGCHLD, so a parent blocked on a mechanism that cannot see its peer die
// (a futex, a semaphore, a message queue) gives up instead of hanging.
//
// Thread-safety: call from the parent's one thread only.
//
// Example:
//   raw::cleanup::InstallHandlers();
//   raw::cleanup::AddPath(dir, /*is_directory=*/true);
//   ... raw::cleanup::RemovePath(dir);

#ifndef IPCRPC_BENCH_RAW_CLEANUP_H_
#define IPCRPC_BENCH_RAW_CLEANUP_H_

#include <sys/types.h>

#include <string>

namespace raw::cleanup {

// Installs the handlers (SIGINT, SIGTERM, SIGHUP: clean up and die; SIGCHLD:
// ChildExited() becomes true and blocking calls return EINTR).
void InstallHandlers();

// A file or (empty) directory to remove if interrupted; RemovePath removes
// it now and forgets it.
void AddPath(const std::string& path, bool is_directory);
void RemovePath(const std::string& path);

// A SysV message queue to remove if interrupted; RemoveMsgq removes it now.
void AddMsgq(int id);
void RemoveMsgq(int id);

// The server process, killed if the parent is interrupted.
void SetChild(pid_t pid);

// True once SIGCHLD has arrived (the server process ended).
bool ChildExited();

}  // namespace raw::cleanup

#endif  // IPCRPC_BENCH_RAW_CLEANUP_H_
