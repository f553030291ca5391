// ipcrpc shm transport: the upgrade set-up (shm_ring.h).
//
// Server: PrepareShm checks the options and creates the region; its
// PendingTransport offers the memfd and, on Complete(), starts the server's
// ShmRingTransport once the client has attached. Client: AttachShm checks the
// offer (name, wake mode, ring size, exactly one fd), attaches to the region
// (ShmRegion::Attach checks the memfd) and claims the client side. The ring
// transport itself is ring_transport.h.

#include "transports/shm/shm_ring.h"

#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/ring_transport.h"
#include "transports/shm/shm_region.h"

namespace ipcrpc {
namespace {

using shm::ShmRegion;
using shm::ShmRingTransport;
using shm::TransportName;

constexpr const char* kFutexName = shm::kFutexTransportName;
constexpr const char* kSemaphoreName = shm::kSemaphoreTransportName;
constexpr absl::Duration kMaxSpinLimit = absl::Milliseconds(10);

uint32_t WakeCode(wire::ShmParams::Wake wake) {
  return wake == wire::ShmParams::SEMAPHORE ? shm::kWakeSemaphore : shm::kWakeFutex;
}


absl::Status ValidateSpin(const ShmOptions& options) {
  if (options.max_spin < absl::ZeroDuration() || options.max_spin > kMaxSpinLimit) {
    return absl::InvalidArgumentError(absl::StrCat("ShmOptions.max_spin ", absl::FormatDuration(options.max_spin),
                                                   " is outside [0, ", absl::FormatDuration(kMaxSpinLimit), "]"));
  }
  return absl::OkStatus();
}

// The longest spin a side's options allow (zero: never spin).
absl::Duration MaxSpin(const ShmOptions& options) {
  return options.spin ? options.max_spin : absl::ZeroDuration();
}

// ---------------------------------------------------------------------------
// The server's pending half.

class ShmPendingTransport final : public PendingTransport {
 public:
  ShmPendingTransport(ShmRegion region, const ShmOptions& options)
      : region_(std::move(region)), options_(options) {}

  void FillOffer(wire::TransportOffer* offer, std::vector<int>* fds) override {
    offer->set_transport(TransportName(WakeCode(options_.wake)));
    wire::ShmParams* params = offer->mutable_shm();
    params->set_ring_bytes(options_.ring_bytes);
    params->set_wake(options_.wake);
    if (region_.has_value()) fds->push_back(region_->memfd());
  }

  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                      absl::Time deadline) override {
    if (!region_.has_value()) {
      return absl::FailedPreconditionError("shm: Complete() was already called");
    }
    if (region_->header().side[shm::kClientSide].attached.load(std::memory_order_acquire) ==
        0) {
      return absl::FailedPreconditionError(
          "shm: the client has not attached to the shared memory (AttachShm must succeed "
          "before TRANSPORT_ACK)");
    }
    ShmRegion region = std::move(*region_);
    region_.reset();
    region.CloseMemfd();  // the mapping keeps the memory; the client has its own fd
    return ShmRingTransport::Create(std::move(region), shm::kServerSide,
                                    std::move(control_socket), MaxSpin(options_));
  }

 private:
  std::optional<ShmRegion> region_;  // empty after Complete()
  ShmOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareShm(const ShmOptions& options) {
  if (!shm::IsValidRingBytes(options.ring_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ShmOptions.ring_bytes ", options.ring_bytes, " must be a power of two in [",
        shm::kMinRingBytes, ", ", shm::kMaxRingBytes, "]"));
  }
  if (options.wake != wire::ShmParams::FUTEX && options.wake != wire::ShmParams::SEMAPHORE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ShmOptions.wake ", static_cast<int>(options.wake), " must be FUTEX or SEMAPHORE"));
  }
  IPCRPC_RETURN_IF_ERROR(ValidateSpin(options));
  IPCRPC_ASSIGN_OR_RETURN(ShmRegion region,
                          ShmRegion::Create(options.ring_bytes, WakeCode(options.wake)));
  return std::unique_ptr<PendingTransport>(
      new ShmPendingTransport(std::move(region), options));
}

absl::StatusOr<std::unique_ptr<Transport>> AttachShm(const wire::TransportOffer& offer,
                                                    std::vector<ScopedFd> fds,
                                                    ScopedFd control_socket,
                                                    const ShmOptions& options) {
  const std::string& name = offer.transport();
  if (name != kFutexName && name != kSemaphoreName) {
    return absl::InvalidArgumentError(absl::StrCat("shm: the offer names transport \"", name,
                                                   "\", not \"shm\" or \"shm+sem\""));
  }
  if (!offer.has_shm()) {
    return absl::InvalidArgumentError("shm: the offer carries no shm parameters");
  }
  const wire::ShmParams& params = offer.shm();
  const wire::ShmParams::Wake expected_wake =
      name == kFutexName ? wire::ShmParams::FUTEX : wire::ShmParams::SEMAPHORE;
  if (params.wake() != expected_wake) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shm: the offer names \"", name, "\" but its wake mode is ",
        wire::ShmParams::Wake_Name(params.wake())));
  }
  if (!shm::IsValidRingBytes(params.ring_bytes())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shm: the offer's ring_bytes ", params.ring_bytes(), " is not a power of two in [",
        shm::kMinRingBytes, ", ", shm::kMaxRingBytes, "]"));
  }
  if (fds.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shm: the offer must come with exactly one fd (the memfd), not ", fds.size()));
  }
  if (!control_socket.valid()) {
    return absl::InvalidArgumentError("shm: no control socket");
  }
  IPCRPC_RETURN_IF_ERROR(ValidateSpin(options));
  IPCRPC_ASSIGN_OR_RETURN(ShmRegion region, ShmRegion::Attach(std::move(fds[0]),
                                                              params.ring_bytes(),
                                                              WakeCode(expected_wake)));
  if (region.header().side[shm::kClientSide].attached.exchange(1, std::memory_order_acq_rel) !=
      0) {
    return absl::FailedPreconditionError(
        "shm: a client has already attached to this shared-memory region");
  }
  region.CloseMemfd();
  return ShmRingTransport::Create(std::move(region), shm::kClientSide, std::move(control_socket),
                                  MaxSpin(options));
}

}  // namespace ipcrpc
