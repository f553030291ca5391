// ipcrpc: spawn a worker process and talk to it over an inherited socketpair.
//
// The common sandbox/worker pattern: the parent starts a child program with
// one end of a socketpair as an inherited fd (number kInheritedFd, announced
// in the environment variable IPCRPC_INHERITED_FD); the parent gets a
// Transport (wrap it in a channel with CreateChannelFromTransport) and the
// child serves on TakeInheritedTransport().
//
// Example (parent):
//   IPCRPC_ASSIGN_OR_RETURN(ipcrpc::WorkerProcess worker,
//                           ipcrpc::WorkerProcess::Spawn({"/path/worker"}));
//   auto channel = ipcrpc::CreateChannelFromTransport(worker.TakeTransport());
// Example (child):
//   IPCRPC_ASSIGN_OR_RETURN(auto transport, ipcrpc::TakeInheritedTransport());
//   builder.AddTransport(std::move(transport));   // see runtime/server.h
//
// Thread-safety: Spawn may be called from any thread (it uses posix_spawn, no
// fork of the whole process state). A WorkerProcess is used by one thread.

#ifndef IPCRPC_CONNECT_SPAWN_H_
#define IPCRPC_CONNECT_SPAWN_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transports/transport.h"
#include "transports/unix_socket.h"

namespace ipcrpc {

// The fd number the child finds its end of the socketpair on.
inline constexpr int kInheritedFd = 3;
inline constexpr char kInheritedFdEnv[] = "IPCRPC_INHERITED_FD";

class WorkerProcess {
 public:
  // Starts argv[0] (a path; PATH is not searched) with argv, the parent's
  // environment plus IPCRPC_INHERITED_FD, and one socketpair end on fd 3.
  static absl::StatusOr<WorkerProcess> Spawn(const std::vector<std::string>& argv);

  WorkerProcess(WorkerProcess&& other) noexcept;
  WorkerProcess& operator=(WorkerProcess&& other) noexcept;
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~WorkerProcess();

  pid_t pid() const { return pid_; }
  // The parent's end of the socketpair; call once (either of the two).
  std::unique_ptr<Transport> TakeTransport() { return std::move(socket_); }
  // The same, with the concrete type: to move the connection to another
  // transport with UpgradeConnection (connect/address.h).
  std::unique_ptr<UnixSocketTransport> TakeSocket() { return std::move(socket_); }

  // Waits up to `timeout` for the child to exit; returns its wait status
  // (as from waitpid). DEADLINE_EXCEEDED if it is still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  WorkerProcess(pid_t pid, std::unique_ptr<UnixSocketTransport> socket)
      : pid_(pid), socket_(std::move(socket)) {}
  pid_t pid_ = -1;
  std::unique_ptr<UnixSocketTransport> socket_;
};

// In the child: the inherited socketpair end as a Transport. NOT_FOUND if this
// process was not started by WorkerProcess::Spawn. Call once (either of the
// two). To let the parent move the connection to another transport, wrap the
// socket with AcceptUpgrades (connect/address.h).
absl::StatusOr<std::unique_ptr<Transport>> TakeInheritedTransport();
absl::StatusOr<std::unique_ptr<UnixSocketTransport>> TakeInheritedSocket();

}  // namespace ipcrpc

#endif  // IPCRPC_CONNECT_SPAWN_H_
