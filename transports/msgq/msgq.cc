// ipcrpc msgq transport: the upgrade set-up (msgq.h).
//
// Server: PrepareMsgq creates the queue pair and picks the fragment size;
// its PendingTransport owns the queues until Complete() hands them to a
// MsgqTransport. Client: AttachMsgq checks the offer and each offered queue
// (queues.h) before it starts a MsgqTransport on them. The byte stream
// itself is msgq_transport.h.

#include "transports/msgq/msgq.h"

#include <errno.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "transports/control_channel.h"
#include "transports/msgq/msgq_transport.h"
#include "transports/msgq/queues.h"

namespace ipcrpc {
namespace {

using msgq::ClampFragment;
using msgq::CreateQueue;
using msgq::kMsgmaxPath;
using msgq::MsgqTransport;
using msgq::ReadKernelLimit;
using msgq::RemoveQueue;
using msgq::ValidateOfferedQueue;

// ---------------------------------------------------------------------------
// Server side: the pending upgrade.

class MsgqPendingTransport final : public PendingTransport {
 public:
  // Owns (removes unless completed) both queues.
  MsgqPendingTransport(int client_to_server, int server_to_client)
      : client_to_server_(client_to_server), server_to_client_(server_to_client) {}
  void set_fragment(size_t fragment) { fragment_ = fragment; }

  ~MsgqPendingTransport() override {
    if (!completed_) {
      RemoveQueue(client_to_server_);
      RemoveQueue(server_to_client_);
    }
  }

  void FillOffer(wire::TransportOffer* offer, std::vector<int>* /*fds*/) override {
    offer->set_transport("msgq");
    wire::MsgqParams* params = offer->mutable_msgq();
    params->set_client_to_server_id(client_to_server_);
    params->set_server_to_client_id(server_to_client_);
    params->set_max_fragment_bytes(static_cast<uint32_t>(fragment_));
  }

  absl::StatusOr<std::unique_ptr<Transport>> Complete(ScopedFd control_socket,
                                                      absl::Time /*deadline*/) override {
    if (completed_) {
      return absl::FailedPreconditionError("msgq: Complete() called twice");
    }
    if (!control_socket.valid()) {
      return absl::InvalidArgumentError("msgq: Complete() needs the control socket");
    }
    MsgqTransport::Config config;
    IPCRPC_ASSIGN_OR_RETURN(
        config.control,
        ControlChannel::Open(std::move(control_socket),
                             absl::StrCat("msgq:c2s=", client_to_server_, ",s2c=",
                                          server_to_client_, " (server)")));
    config.send_id = server_to_client_;
    config.recv_id = client_to_server_;
    config.send_fragment = fragment_;
    config.recv_fragment = fragment_;
    // From here the transport owns the queues, on success and on failure.
    completed_ = true;
    return MsgqTransport::Start(std::move(config));
  }

 private:
  const int client_to_server_;
  const int server_to_client_;
  size_t fragment_ = 0;
  bool completed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingTransport>> PrepareMsgq(const MsgqOptions& options,
                                                              CreatedObjects* created) {
  IPCRPC_ASSIGN_OR_RETURN(size_t msgmax, ReadKernelLimit(kMsgmaxPath));
  IPCRPC_ASSIGN_OR_RETURN(int client_to_server, CreateQueue());
  if (created != nullptr) created->MessageQueue(client_to_server);
  absl::StatusOr<int> server_to_client = CreateQueue();
  if (server_to_client.ok() && created != nullptr) created->MessageQueue(*server_to_client);
  if (!server_to_client.ok()) {
    RemoveQueue(client_to_server);
    return server_to_client.status();
  }
  // Owns both queues from here: any early return removes them.
  auto pending =
      std::make_unique<MsgqPendingTransport>(client_to_server, *server_to_client);
  size_t queue_bytes = SIZE_MAX;
  for (int id : {client_to_server, *server_to_client}) {
    msqid_ds ds;
    if (::msgctl(id, IPC_STAT, &ds) < 0) {
      return ErrnoStatus(errno, absl::StrCat("msgq: IPC_STAT of new queue ", id));
    }
    queue_bytes = std::min<size_t>(queue_bytes, ds.msg_qbytes);
  }
  // msgmax is an int on Linux, so the fragment fits the 32-bit offer field.
  size_t fragment = ClampFragment(options.max_fragment_bytes, msgmax, queue_bytes);
  if (fragment == 0 || fragment > UINT32_MAX) {
    return absl::FailedPreconditionError(
        absl::StrCat("msgq: unusable fragment size ", fragment, " (msgmax ", msgmax,
                     ", queue capacity ", queue_bytes, ")"));
  }
  pending->set_fragment(fragment);
  return std::unique_ptr<PendingTransport>(std::move(pending));
}

absl::StatusOr<std::unique_ptr<Transport>> AttachMsgq(const wire::TransportOffer& offer,
                                                      std::vector<ScopedFd> fds,
                                                      ScopedFd control_socket,
                                                      const MsgqOptions& options) {
  if (offer.transport() != "msgq" || !offer.has_msgq()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer is for transport \"", offer.transport(), "\"",
        offer.has_msgq() ? "" : " and carries no msgq parameters"));
  }
  if (!fds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer came with ", fds.size(), " file descriptors; it needs none"));
  }
  if (!control_socket.valid()) {
    return absl::InvalidArgumentError("msgq: AttachMsgq needs the control socket");
  }
  const wire::MsgqParams& params = offer.msgq();
  const int client_to_server = params.client_to_server_id();
  const int server_to_client = params.server_to_client_id();
  if (client_to_server == server_to_client) {
    return absl::InvalidArgumentError(
        absl::StrCat("msgq: the offer names queue ", client_to_server, " for both directions"));
  }
  IPCRPC_ASSIGN_OR_RETURN(
      std::unique_ptr<ControlChannel> control,
      ControlChannel::Open(std::move(control_socket),
                           absl::StrCat("msgq:c2s=", client_to_server, ",s2c=", server_to_client,
                                        " (client)")));
  const uid_t server_uid = control->peer().uid;
  IPCRPC_ASSIGN_OR_RETURN(msqid_ds c2s,
                          ValidateOfferedQueue(client_to_server, "client-to-server", server_uid));
  IPCRPC_RETURN_IF_ERROR(
      ValidateOfferedQueue(server_to_client, "server-to-client", server_uid).status());
  IPCRPC_ASSIGN_OR_RETURN(size_t msgmax, ReadKernelLimit(kMsgmaxPath));
  size_t offered = params.max_fragment_bytes();
  if (offered == 0 || offered > msgmax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "msgq: the offer's max_fragment_bytes is ", offered, "; it must be 1..", msgmax,
        " (msgmax)"));
  }
  MsgqTransport::Config config;
  config.send_id = client_to_server;
  config.recv_id = server_to_client;
  config.send_fragment =
      std::min(ClampFragment(options.max_fragment_bytes, msgmax, c2s.msg_qbytes), offered);
  config.recv_fragment = offered;
  config.control = std::move(control);
  return MsgqTransport::Start(std::move(config));
}

}  // namespace ipcrpc
