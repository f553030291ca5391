// ipcrpc fifo transport: the upgrade set-up (fifo.h).
//
// Server: PrepareFifo makes the private directory and FIFOs (fifo_files.h)
// and opens its read end; its PendingTransport offers both paths and, on
// Complete(), opens its write end, removes the names and starts the
// FifoTransport. Client: AttachFifo checks the offer, then opens each path
// only after the ownership checks (OpenOfferedFifo). The byte stream itself
// is fifo_transport.h.

#include "transports/fifo/fifo.h"

#include <errno.h>
#include <fcntl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "transports/control_channel.h"
#include "transports/fifo/fifo_files.h"
#include "transports/fifo/fifo_transport.h"

namespace ipcrpc {
namespace {

using fifo::CreateFifoFiles;
using fifo::FifoFiles;
using fifo::FifoTransport;
using fifo::OpenOfferedFifo;
using fifo::PathErrorStatus;

class PendingFifo final : public PendingTransport {
 public:
  PendingFifo(std::unique_ptr<FifoFiles> files, ScopedFd read_fifo)
      : files_(std::move(files)), read_fifo_(std::move(read_fifo)) {}

  void FillOffer(wire::TransportOffer* offer, std::vector<int>* /*fds*/) override {
    offer->set_transport(kFifoTransportName);
    wire::FifoParams* params = offer->mutable_fifo();
    params->set_client_to_server_path(files_->client_to_server());
    params->set_server_to_client_path(files_->server_to_client());
  }

  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                      absl::Time /*deadline*/) override {
    if (completed_) {
      return absl::FailedPreconditionError("fifo: Complete() was already called");
    }
    completed_ = true;
    IPCRPC_ASSIGN_OR_RETURN(
        std::unique_ptr<ControlChannel> control,
        ControlChannel::Open(std::move(control_socket),
                             absl::StrCat("fifo:", files_->dir(), " (server)")));
    // Opening is non-blocking, so the deadline is not needed. Whatever the
    // outcome, the names go: once both ends are open they serve no purpose,
    // and after a failure nothing may stay on disk.
    ScopedFd write_fifo(::open(files_->server_to_client().c_str(),
                               O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
    int open_error = errno;
    files_->Remove();
    if (!write_fifo.valid()) {
      if (open_error == ENXIO) {
        return absl::FailedPreconditionError(absl::StrCat(
            "fifo: ", files_->server_to_client(),
            " has no reader: the client did not open it (its AttachFifo must succeed before "
            "TRANSPORT_ACK{ok: true})"));
      }
      return PathErrorStatus(open_error, "fifo: open " + files_->server_to_client());
    }
    return FifoTransport::Create(std::move(read_fifo_), std::move(write_fifo),
                                 std::move(control));
  }

 private:
  std::unique_ptr<FifoFiles> files_;
  ScopedFd read_fifo_;  // the server's end of c2s, open since PrepareFifo
  bool completed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareFifo(const FifoOptions& options,
                                                              CreatedObjects* created) {
  if (options.parent_dir.empty()) {
    return absl::InvalidArgumentError("fifo: FifoOptions.parent_dir is empty");
  }
  // The files go again (FifoFiles' destructor) on every failure from here.
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<FifoFiles> files, CreateFifoFiles(options.parent_dir, created));
  // Opening for reading with O_NONBLOCK succeeds without a writer; it is what
  // lets the client open its write end without blocking.
  ScopedFd read_fifo(
      ::open(files->client_to_server().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
  if (!read_fifo.valid()) {
    return PathErrorStatus(errno, "fifo: open " + files->client_to_server());
  }
  return std::unique_ptr<PendingTransport>(
      new PendingFifo(std::move(files), std::move(read_fifo)));
}

absl::StatusOr<std::unique_ptr<Transport>> AttachFifo(const wire::TransportOffer& offer,
                                                      std::vector<ScopedFd> fds,
                                                      ScopedFd control_socket,
                                                      const FifoOptions& /*options*/) {
  if (offer.transport() != kFifoTransportName) {
    return absl::InvalidArgumentError(absl::StrCat("fifo: the offer is for transport \"",
                                                   offer.transport(), "\", not \"fifo\""));
  }
  if (!fds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fifo: a fifo offer carries no file descriptors, but ", fds.size(), " arrived"));
  }
  const wire::FifoParams& params = offer.fifo();
  if (params.client_to_server_path() == params.server_to_client_path()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fifo: the offer names the same path for both directions: \"",
        params.client_to_server_path(), "\""));
  }
  // The FIFOs must belong to the process at the other end of the socket.
  const std::string& path = params.client_to_server_path();
  IPCRPC_ASSIGN_OR_RETURN(
      std::unique_ptr<ControlChannel> control,
      ControlChannel::Open(std::move(control_socket),
                           absl::StrCat("fifo:", path.substr(0, path.rfind('/')), " (client)")));
  const PeerCredentials& server = control->peer();
  // Write end first: it is the one that proves the server's reader is open.
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd write_fifo,
                          OpenOfferedFifo(params.client_to_server_path(), O_WRONLY, server.uid));
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd read_fifo,
                          OpenOfferedFifo(params.server_to_client_path(), O_RDONLY, server.uid));
  return FifoTransport::Create(std::move(read_fifo), std::move(write_fifo), std::move(control));
}

}  // namespace ipcrpc
