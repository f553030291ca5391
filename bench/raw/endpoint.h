// Raw IPC benchmarks: the mechanisms with no framework around them.
//
// Each mechanism is what a competent engineer would write by hand for a
// two-process ping-pong: blocking read/write on a socketpair, two pipes or two
// FIFOs; shared-memory rings woken by a futex word (pure spin, spin then sleep,
// pure sleep) or by process-shared POSIX semaphores; SysV message queues.
// Every one is presented as a two-way byte stream (an Endpoint per process),
// so one benchmark loop (raw_bench.cc) drives them all.
//
// Lifetime: MakeEndpointPair() runs in the parent before fork(); afterwards
// the parent calls ClientEnd() and the child ServerEnd(), once each. The pair
// must outlive the endpoints. Destroying the pair in the parent removes what
// the mechanism created (FIFO files, SysV queues); anonymous objects (memfd,
// socketpair, pipes) need nothing. Nothing is left in /dev/shm or /tmp, also
// when the run is interrupted (bench/raw/cleanup.h).
//
// Thread-safety: an Endpoint is used by one thread.
//
// Example:
//   auto pair = raw::MakeEndpointPair("unix", raw::MechanismOptions());
//   pid_t pid = fork();
//   if (pid == 0) { auto end = (*pair)->ServerEnd(); ... _exit(0); }
//   auto end = (*pair)->ClientEnd();
//   (*end)->Send(data, 64); (*end)->Receive(reply, 64);

#ifndef IPCRPC_BENCH_RAW_ENDPOINT_H_
#define IPCRPC_BENCH_RAW_ENDPOINT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace raw {

// One process's end of a two-way byte stream.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  // Sends all `size` bytes (blocks while the mechanism is full).
  virtual absl::Status Send(const char* data, size_t size) = 0;
  // Blocks until something has arrived, then receives between 1 and
  // `capacity` bytes of it. UNAVAILABLE once the peer is gone.
  virtual absl::StatusOr<size_t> ReceiveSome(char* data, size_t capacity) = 0;

  // Receives exactly `size` bytes.
  absl::Status Receive(char* data, size_t size) {
    while (size > 0) {
      absl::StatusOr<size_t> n = ReceiveSome(data, size);
      if (!n.ok()) return n.status();
      data += *n;
      size -= *n;
    }
    return absl::OkStatus();
  }
};

class EndpointPair {
 public:
  virtual ~EndpointPair() = default;
  // In the parent (client) process, after fork().
  virtual absl::StatusOr<std::unique_ptr<Endpoint>> ClientEnd() = 0;
  // In the child (server) process, after fork().
  virtual absl::StatusOr<std::unique_ptr<Endpoint>> ServerEnd() = 0;
};

struct MechanismOptions {
  // shm-futex-spin: how long a receiver spins before it sleeps.
  int64_t spin_ns = 20000;
  // Shared-memory rings: capacity of each direction, bytes (power of two).
  size_t ring_bytes = size_t{1} << 20;
};

struct Mechanism {
  std::string name;         // as given to MakeEndpointPair and printed in results
  std::string description;  // one line, for the results file
  bool spins_only;          // never sleeps: pointless with both processes on one CPU
};

// Every mechanism, in the order results are printed.
const std::vector<Mechanism>& Mechanisms();

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeEndpointPair(absl::string_view mechanism,
                                                               const MechanismOptions& options);

// Factories, one per file (fd_endpoints.cc, shm_ring.cc, msgq_endpoint.cc).
enum class FdKind { kSocketPair, kPipes, kFifos };
absl::StatusOr<std::unique_ptr<EndpointPair>> MakeFdPair(FdKind kind);

enum class Wake { kSpinOnly, kFutex, kSemaphore };
absl::StatusOr<std::unique_ptr<EndpointPair>> MakeShmPair(Wake wake, int64_t spin_ns,
                                                          size_t ring_bytes);

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeMsgqPair();

}  // namespace raw

#endif  // IPCRPC_BENCH_RAW_ENDPOINT_H_
