#include "bench/raw/endpoint.h"

#include "absl/strings/str_cat.h"

namespace raw {

const std::vector<Mechanism>& Mechanisms() {
  static const auto* mechanisms = new std::vector<Mechanism>{
      {"unix", "unix-domain stream socketpair, blocking write/read", false},
      {"pipe", "two pipes (default 64 KiB buffer), blocking write/read", false},
      {"fifo", "two named FIFOs (default 64 KiB buffer), blocking write/read", false},
      {"shm-spin", "shared-memory rings, both sides spin, never sleep", true},
      {"shm-futex-spin", "shared-memory rings, spin (--spin_us) then sleep on a futex", false},
      {"shm-futex", "shared-memory rings, sleep on a futex at once", false},
      {"shm-sem", "shared-memory rings, sleep on a process-shared sem_t", false},
      {"msgq", "SysV message queues, one per direction, msgmax-sized fragments", false},
  };
  return *mechanisms;
}

absl::StatusOr<std::unique_ptr<EndpointPair>> MakeEndpointPair(absl::string_view mechanism,
                                                               const MechanismOptions& options) {
  if (mechanism == "unix") return MakeFdPair(FdKind::kSocketPair);
  if (mechanism == "pipe") return MakeFdPair(FdKind::kPipes);
  if (mechanism == "fifo") return MakeFdPair(FdKind::kFifos);
  if (mechanism == "shm-spin") return MakeShmPair(Wake::kSpinOnly, 0, options.ring_bytes);
  if (mechanism == "shm-futex-spin") {
    return MakeShmPair(Wake::kFutex, options.spin_ns, options.ring_bytes);
  }
  if (mechanism == "shm-futex") return MakeShmPair(Wake::kFutex, 0, options.ring_bytes);
  if (mechanism == "shm-sem") return MakeShmPair(Wake::kSemaphore, 0, options.ring_bytes);
  if (mechanism == "msgq") return MakeMsgqPair();
  return absl::InvalidArgumentError(absl::StrCat("unknown raw mechanism \"", mechanism, "\""));
}

}  // namespace raw
