// ipcrpc fifo transport: FifoTransport, the byte stream over two FIFOs.
//
// One side of an established fifo connection, the same on both sides: it
// reads its read FIFO, writes its write FIFO (both non-blocking, waited on
// with poll()), and polls the control channel's socket in the same poll
// sets, so the peer's loss ends a blocked call (transports/control_channel.h).
// Write blocks SIGPIPE for its duration (sigpipe_block.h). Set-up — which
// FIFOs, whether they can be trusted — is fifo.cc's and fifo_files.h's.
//
// Thread-safety: as for every Transport (transports/transport.h): one
// reader, one writer, Interrupt()/Shutdown() from any thread. No thread of
// its own.
//
// Ownership: owns both FIFO ends (closed on destruction, never earlier: a
// thread may be inside read()/writev() on them) and the control channel.
//
// Example (what PendingFifo::Complete and AttachFifo do):
//   IPCRPC_ASSIGN_OR_RETURN(auto transport,
//       fifo::FifoTransport::Create(std::move(read_fifo), std::move(write_fifo),
//                                   std::move(control)));

#ifndef IPCRPC_TRANSPORTS_FIFO_FIFO_TRANSPORT_H_
#define IPCRPC_TRANSPORTS_FIFO_FIFO_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/fd_util.h"
#include "base/scoped_fd.h"
#include "transports/control_channel.h"
#include "transports/transport.h"

namespace ipcrpc::fifo {

class FifoTransport final : public Transport {
 public:
  // Takes the two FIFO ends (non-blocking) and the control channel.
  static absl::StatusOr<std::unique_ptr<Transport>> Create(
      ScopedFd read_fifo, ScopedFd write_fifo, std::unique_ptr<ControlChannel> control);

  absl::Status Write(absl::Span<const absl::string_view> chunks,
                     absl::Time deadline) override;
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override;
  void Interrupt() override { SignalEventFd(wake_.get()); }
  void Shutdown() override;
  PeerCredentials peer() const override { return control_->peer(); }
  // The control channel knows (a zero-timeout poll of the control socket).
  bool PeerGone() override { return control_->PeerGone(); }
  std::string description() const override { return description_; }
  // Descriptors travel as fd records on the control socket, ahead of the
  // bytes (transports/control_channel.h).
  int max_fds_per_write() const override { return ControlChannel::kMaxFdsPerRecord; }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds, absl::Time deadline) override {
    if (!fds.empty()) {
      absl::Status sent = control_->SendFds(fds, deadline);
      if (!sent.ok()) return sent;
    }
    return Write(chunks, deadline);
  }
  absl::StatusOr<FdBatch> TakeFdBatch() override { return control_->TakeFdBatch(); }

 private:
  FifoTransport(ScopedFd read_fifo, ScopedFd write_fifo,
                std::unique_ptr<ControlChannel> control, ScopedFd wake)
      : read_fifo_(std::move(read_fifo)),
        write_fifo_(std::move(write_fifo)),
        control_(std::move(control)),
        wake_(std::move(wake)),
        description_(control_->description()) {}

  // UNAVAILABLE once Shutdown() was called or the peer is known to be gone.
  absl::Status CheckOpen() const;
  // Records that the peer is gone (seen on a FIFO) and says so.
  absl::Status PeerClosed();
  // Interprets what poll() reported on the control socket (the liveness
  // rule of transports/control_channel.h); OK means the wake-up was spurious.
  absl::Status CheckControl(short revents);
  // Waits until the write FIFO has room (or its reader is gone), the control
  // socket reports the end, or `deadline` passes.
  absl::Status WaitWritable(absl::Time deadline);

  ScopedFd read_fifo_;
  ScopedFd write_fifo_;
  // The unix socket the connection started on (liveness only); polled in
  // this transport's own poll sets, with its doorbell (Shutdown()).
  const std::unique_ptr<ControlChannel> control_;
  ScopedFd wake_;  // eventfd: Interrupt() makes it readable
  const std::string description_;
  // When Write last asked the control socket whether the peer is still
  // there (steady clock, ns); asked at most once per kControlCheckInterval.
  std::atomic<int64_t> control_checked_ns_{INT64_MIN};
  // Read side only: the last read drained the FIFO, so the next one polls
  // first instead of paying for a read() that fails with EAGAIN.
  bool poll_before_read_ = false;
};

}  // namespace ipcrpc::fifo

#endif  // IPCRPC_TRANSPORTS_FIFO_FIFO_TRANSPORT_H_
