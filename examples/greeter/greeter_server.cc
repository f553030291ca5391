// Serves the example Greeter.
//
//   greeter_server unix:/tmp/greeter.sock     listen on an address
//   (started by WorkerProcess::Spawn)         serve the inherited socketpair
//
// Stops on SIGINT/SIGTERM, letting calls in flight finish for up to 2 s.

#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "connect/address.h"
#include "examples/greeter/greeter_service.h"
#include "runtime/ipcrpc.h"

namespace {

absl::Status Serve(int argc, char** argv) {
  // Block the stop signals in every thread; the main thread takes them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  demo::GreeterImpl service;
  ipcrpc::ServerBuilder builder;
  builder.RegisterService(&service);
  bool worker = argc < 2;
  if (worker) {
    // The parent may move the connection to another transport (e.g. shm).
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::UnixSocketTransport> socket,
                            ipcrpc::TakeInheritedSocket());
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::Transport> transport,
                            ipcrpc::AcceptUpgrades(std::move(socket)));
    builder.AddTransport(std::move(transport));
  } else {
    builder.AddListeningAddress(argv[1]);
  }
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::Server> server, builder.BuildAndStart());
  if (worker) {
    server->Wait();  // returns when the parent closes the connection
    return absl::OkStatus();
  }
  std::printf("greeter_server: listening on %s (pid %d)\n", argv[1], getpid());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::printf("greeter_server: signal %d, shutting down\n", signal_number);
  server->Shutdown(absl::Now() + absl::Seconds(2));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::Status status = Serve(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "greeter_server: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
