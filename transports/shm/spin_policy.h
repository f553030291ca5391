// ipcrpc shm transport: how long a waiter spins before it sleeps.
//
// Waking a sleeping thread on another CPU costs ~20-25 us on the machines we
// measured; a thread that spins when the data lands gets it in ~0.2 us. But
// spinning only pays if the data comes within the spin, and spinning while
// the peer needs this CPU delays the peer (both processes on one CPU: a 50 us
// spin doubled the round trip). A spin window shorter than a wake-up flips
// between fast and slow from run to run. So the budget adapts:
//
//   * It starts at `max` (ShmOptions::max_spin, default 50 us).
//   * A spin that sees the data arrive ("hit") restores the full budget.
//   * A spin that runs out ("miss") halves the budget; a miss at half budget
//     turns spinning off: the waiter sleeps at once.
//   * While off, every `probe_interval`-th wait spins once with the full
//     budget (a probe); a hit turns spinning back on, a miss doubles the
//     interval (16, 32, ... up to 1024 waits).
//   * Spins cut short because the peer's last CPU is this CPU, or by the
//     caller's deadline, count as neither hit nor miss (ring_transport.cc).
//
// The budget never drops below max/2, so the spin is either long enough to
// cover a wake-up or not done at all.
//
// Thread-safety: one instance per waiting role (reader, writer), used by
// the one thread in that role.
//
// Example:
//   AdaptiveSpin spin(absl::Microseconds(50));
//   int64_t budget = spin.NextBudgetNs();   // 0: sleep at once
//   ... spin up to budget ...; spin.Record(/*hit=*/data_arrived);

#ifndef IPCRPC_TRANSPORTS_SHM_SPIN_POLICY_H_
#define IPCRPC_TRANSPORTS_SHM_SPIN_POLICY_H_

#include <cstdint>

#include "absl/time/time.h"

namespace ipcrpc::shm {

class AdaptiveSpin {
 public:
  static constexpr uint32_t kMinProbeInterval = 16;
  static constexpr uint32_t kMaxProbeInterval = 1024;

  // `max` <= 0 disables spinning altogether.
  explicit AdaptiveSpin(absl::Duration max);

  // The spin budget for the next wait, in nanoseconds; 0 means sleep at once.
  int64_t NextBudgetNs();

  // After a spin of the budget NextBudgetNs() returned: did it pay off?
  void Record(bool hit);

 private:
  int64_t max_ns_;
  int64_t budget_ns_;       // 0 while spinning is off
  uint32_t probe_interval_ = kMinProbeInterval;
  uint32_t waits_to_probe_ = 0;
};

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_SPIN_POLICY_H_
