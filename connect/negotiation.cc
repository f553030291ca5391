#include "connect/negotiation.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/sync.h"
#include "connect/pending_objects.h"
#include "wire/frame.h"
#include "wire/refusal.h"

namespace ipcrpc {
namespace {

using internal::FrameHeader;
using internal::FrameType;
using internal::kFrameHeaderSize;

constexpr size_t kMaxNegotiationPayload = 64 * 1024;

// Reads exactly buffer.size() bytes (collecting fds if `fds` is given).
absl::Status ReadExactly(UnixSocketTransport& socket, absl::Span<char> buffer,
                         std::vector<ScopedFd>* fds, absl::Time deadline) {
  size_t got = 0;
  while (got < buffer.size()) {
    absl::StatusOr<size_t> n =
        fds ? socket.ReadWithFds(buffer.subspan(got), fds, deadline)
            : socket.Read(buffer.subspan(got), deadline);
    if (!n.ok()) return n.status();
    got += *n;
  }
  return absl::OkStatus();
}

// Reads one negotiation frame of `type`, without reading past it.
absl::Status ReadNegotiationFrame(UnixSocketTransport& socket, FrameType type,
                                  google::protobuf::MessageLite* message,
                                  std::vector<ScopedFd>* fds, absl::Time deadline) {
  char header_bytes[kFrameHeaderSize];
  IPCRPC_RETURN_IF_ERROR(ReadExactly(socket, absl::MakeSpan(header_bytes), fds, deadline));
  IPCRPC_ASSIGN_OR_RETURN(FrameHeader header, internal::DecodeFrameHeader(header_bytes));
  if (header.type == FrameType::kGoAway && header.stream_id == 0 &&
      header.length <= kMaxNegotiationPayload) {  // the server refuses this peer
    std::string payload(header.length, '\0');
    IPCRPC_RETURN_IF_ERROR(ReadExactly(socket, absl::MakeSpan(payload), fds, deadline));
    return internal::RefusalStatus(payload, socket.description());
  }
  if (header.type != type || header.stream_id != 0 || header.length > kMaxNegotiationPayload) {
    return absl::DataLossError(absl::StrCat(
        "transport negotiation: expected frame type ", static_cast<int>(type),
        " on stream 0, got type ", static_cast<int>(header.type), " (", header.length,
        " bytes)"));
  }
  std::string payload(header.length, '\0');
  IPCRPC_RETURN_IF_ERROR(ReadExactly(socket, absl::MakeSpan(payload), fds, deadline));
  if (!message->ParseFromString(payload)) {
    return absl::DataLossError("transport negotiation: malformed payload");
  }
  return absl::OkStatus();
}

absl::Status WriteNegotiationFrame(UnixSocketTransport& socket, FrameType type,
                                   const google::protobuf::MessageLite& message,
                                   absl::Span<const int> fds, absl::Time deadline) {
  if (fds.size() > UINT8_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transport negotiation: ", fds.size(), " descriptors do not fit one frame's fd_count"));
  }
  std::string out;
  internal::AppendProtoFrame(type, 0, message, message.ByteSizeLong(), &out,
                             static_cast<uint8_t>(fds.size()));
  absl::string_view chunks[] = {out};
  return socket.WriteWithFds(chunks, fds, deadline);
}

const UpgradeableTransport* Find(const std::vector<UpgradeableTransport>& table,
                                 absl::string_view name) {
  for (const UpgradeableTransport& t : table) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Forwards to an upgraded transport, keeping the identity the unix socket
// reported and a description that names both.
class UpgradedTransport final : public Transport {
 public:
  UpgradedTransport(std::unique_ptr<Transport> inner, PeerCredentials peer,
                    std::string description)
      : inner_(std::move(inner)), peer_(peer), description_(std::move(description)) {}
  absl::Status Write(absl::Span<const absl::string_view> chunks, absl::Time deadline) override {
    return inner_->Write(chunks, deadline);
  }
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override {
    return inner_->Read(buffer, deadline);
  }
  void Interrupt() override { inner_->Interrupt(); }
  void Shutdown() override { inner_->Shutdown(); }
  PeerCredentials peer() const override { return peer_; }
  std::string description() const override { return description_; }
  bool PeerGone() override { return inner_->PeerGone(); }
  int readiness_fd() override { return inner_->readiness_fd(); }
  void NoteReadable() override { inner_->NoteReadable(); }
  bool ReadDrained() const override { return inner_->ReadDrained(); }
  int max_fds_per_write() const override { return inner_->max_fds_per_write(); }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds, absl::Time deadline) override {
    return inner_->WriteWithFds(chunks, fds, deadline);
  }
  absl::StatusOr<size_t> ReadWithFds(absl::Span<char> buffer, std::vector<ScopedFd>* fds,
                                     absl::Time deadline) override {
    return inner_->ReadWithFds(buffer, fds, deadline);
  }
  absl::StatusOr<size_t> ReadWithFdBatches(absl::Span<char> buffer,
                                           std::vector<FdBatch>* batches,
                                           absl::Time deadline) override {
    return inner_->ReadWithFdBatches(buffer, batches, deadline);
  }
  absl::StatusOr<FdBatch> TakeFdBatch() override { return inner_->TakeFdBatch(); }

 private:
  std::unique_ptr<Transport> inner_;
  PeerCredentials peer_;
  std::string description_;
};

// The server's end of an accepted connection: negotiates on first use.
class ServerNegotiatingTransport final : public Transport {
 public:
  ServerNegotiatingTransport(std::unique_ptr<UnixSocketTransport> socket,
                             std::shared_ptr<const std::vector<UpgradeableTransport>> allowed,
                             bool allow_unix)
      : socket_(std::move(socket)),
        allowed_(std::move(allowed)),
        allow_unix_(allow_unix),
        peer_(socket_->peer()),
        description_(socket_->description()),
        current_(socket_.get()) {}

  absl::Status Write(absl::Span<const absl::string_view> chunks, absl::Time deadline) override {
    IPCRPC_RETURN_IF_ERROR(EnsureNegotiated(deadline));
    return data_->Write(chunks, deadline);
  }

  // A refusal goes out before negotiation: a client that has not written
  // yet (or never will) does not hold up the thread that refuses it.
  absl::Status WriteFirst(absl::Span<const absl::string_view> chunks,
                          absl::Time deadline) override {
    if (!done_.load(std::memory_order_acquire)) return socket_->Write(chunks, deadline);
    return Write(chunks, deadline);
  }

  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time deadline) override {
    IPCRPC_RETURN_IF_ERROR(EnsureNegotiated(deadline));
    if (!prefix_.empty()) {  // the first frame's header, read while negotiating
      size_t n = std::min(buffer.size(), prefix_.size());
      std::copy_n(prefix_.data(), n, buffer.data());
      prefix_.erase(0, n);
      return n;
    }
    return data_->Read(buffer, deadline);
  }

  // Readiness is the negotiated transport's, once negotiation is over and
  // the bytes it read ahead (prefix_) are consumed; none before.
  int readiness_fd() override {
    if (!done_.load(std::memory_order_acquire) || !result_.ok() || !data_ || !prefix_.empty()) {
      return -1;
    }
    return data_->readiness_fd();
  }
  void NoteReadable() override {
    if (done_.load(std::memory_order_acquire) && result_.ok() && data_) data_->NoteReadable();
  }
  bool ReadDrained() const override {
    return done_.load(std::memory_order_acquire) && result_.ok() && data_ && prefix_.empty() &&
           data_->ReadDrained();
  }

  // Descriptor passing is what the negotiated transport offers: known once
  // the first Read or Write has negotiated (0 before).
  int max_fds_per_write() const override {
    return done_.load(std::memory_order_acquire) && result_.ok() && data_
               ? data_->max_fds_per_write()
               : 0;
  }
  absl::Status WriteWithFds(absl::Span<const absl::string_view> chunks,
                            absl::Span<const int> fds, absl::Time deadline) override {
    IPCRPC_RETURN_IF_ERROR(EnsureNegotiated(deadline));
    return data_->WriteWithFds(chunks, fds, deadline);
  }
  absl::StatusOr<size_t> ReadWithFdBatches(absl::Span<char> buffer,
                                           std::vector<FdBatch>* batches,
                                           absl::Time deadline) override {
    IPCRPC_RETURN_IF_ERROR(EnsureNegotiated(deadline));
    if (!prefix_.empty()) return Read(buffer, deadline);
    return data_->ReadWithFdBatches(buffer, batches, deadline);
  }
  absl::StatusOr<FdBatch> TakeFdBatch() override {
    if (!done_.load(std::memory_order_acquire) || !result_.ok() || !data_) {
      return Transport::TakeFdBatch();
    }
    return data_->TakeFdBatch();
  }

  void Interrupt() override {
    internal::MutexLock lock(&current_mu_);
    current_->Interrupt();
  }

  void Shutdown() override {
    internal::MutexLock lock(&current_mu_);
    shut_down_ = true;
    current_->Shutdown();
  }

  PeerCredentials peer() const override { return peer_; }

  std::string description() const override {
    internal::MutexLock lock(&current_mu_);
    return description_;
  }

 private:
  absl::Status EnsureNegotiated(absl::Time deadline) {
    if (done_.load(std::memory_order_acquire)) return result_;
    internal::MutexLock lock(&negotiate_mu_);
    if (!done_.load(std::memory_order_relaxed)) {
      result_ = Negotiate(deadline);
      if (!result_.ok()) socket_->Shutdown();
      done_.store(true, std::memory_order_release);
    }
    return result_;
  }

  absl::Status Negotiate(absl::Time deadline) {
    char header_bytes[kFrameHeaderSize];
    IPCRPC_RETURN_IF_ERROR(ReadExactly(*socket_, absl::MakeSpan(header_bytes), nullptr, deadline));
    IPCRPC_ASSIGN_OR_RETURN(FrameHeader header, internal::DecodeFrameHeader(header_bytes));
    if (header.type != FrameType::kTransportRequest) {
      // A client speaking ipcrpc directly on the socket: the header belongs
      // to the byte stream.
      prefix_.assign(header_bytes, kFrameHeaderSize);
      return UseSocket();
    }
    if (header.stream_id != 0 || header.length > kMaxNegotiationPayload) {
      return absl::DataLossError("malformed TRANSPORT_REQUEST");
    }
    std::string payload(header.length, '\0');
    IPCRPC_RETURN_IF_ERROR(ReadExactly(*socket_, absl::MakeSpan(payload), nullptr, deadline));
    wire::TransportRequest request;
    if (!request.ParseFromString(payload)) return absl::DataLossError("malformed TRANSPORT_REQUEST");

    wire::TransportOffer offer;
    const UpgradeableTransport* chosen = nullptr;
    bool unix_chosen = false;
    for (const std::string& name : request.transports()) {
      if (name == kUnixTransportName && allow_unix_) {
        unix_chosen = true;
        break;
      }
      if ((chosen = Find(*allowed_, name)) != nullptr) break;
    }
    if (unix_chosen) {
      offer.set_transport(kUnixTransportName);
      IPCRPC_RETURN_IF_ERROR(
          WriteNegotiationFrame(*socket_, FrameType::kTransportOffer, offer, {}, deadline));
      return UseSocket();
    }
    if (chosen == nullptr) {
      std::vector<std::string> names;
      if (allow_unix_) names.push_back(kUnixTransportName);
      for (const UpgradeableTransport& t : *allowed_) names.push_back(t.name);
      offer.set_error(absl::StrCat("none of the requested transports [",
                                   absl::StrJoin(request.transports(), ", "),
                                   "] is allowed by this server; it allows [",
                                   absl::StrJoin(names, ", "), "]"));
      WriteNegotiationFrame(*socket_, FrameType::kTransportOffer, offer, {}, deadline)
          .IgnoreError();
      return absl::FailedPreconditionError(offer.error());
    }
    // Made before the objects and removed after them: the next server removes
    // them if this process dies first (connect/pending_objects.h).
    std::optional<PendingObjectRecord> record;
    if (chosen->creates_lasting_objects) record.emplace();
    absl::StatusOr<std::unique_ptr<PendingTransport>> pending =
        chosen->prepare(request, record ? &*record : nullptr);
    if (!pending.ok()) {
      offer.set_error(absl::StrCat("server could not set up ", chosen->name, ": ",
                                   pending.status().message()));
      WriteNegotiationFrame(*socket_, FrameType::kTransportOffer, offer, {}, deadline)
          .IgnoreError();
      return pending.status();
    }
    std::vector<int> fds;
    (*pending)->FillOffer(&offer, &fds);
    IPCRPC_RETURN_IF_ERROR(
        WriteNegotiationFrame(*socket_, FrameType::kTransportOffer, offer, fds, deadline));
    wire::TransportAck ack;
    IPCRPC_RETURN_IF_ERROR(
        ReadNegotiationFrame(*socket_, FrameType::kTransportAck, &ack, nullptr, deadline));
    if (!ack.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("client could not attach to ", chosen->name, ": ", ack.error()));
    }
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<Transport> data,
                            (*pending)->Complete(socket_->ReleaseSocket(), deadline));
    internal::MutexLock lock(&current_mu_);
    data_ = std::move(data);
    current_ = data_.get();
    description_ = absl::StrCat(chosen->name, " via ", description_);
    if (shut_down_) data_->Shutdown();
    return absl::OkStatus();
  }

  absl::Status UseSocket() {
    internal::MutexLock lock(&current_mu_);
    data_ = std::move(socket_);
    current_ = data_.get();
    socket_ = nullptr;
    return absl::OkStatus();
  }

  std::unique_ptr<UnixSocketTransport> socket_;  // until negotiated
  const std::shared_ptr<const std::vector<UpgradeableTransport>> allowed_;
  const bool allow_unix_;
  const PeerCredentials peer_;

  internal::Mutex negotiate_mu_;
  std::atomic<bool> done_{false};
  absl::Status result_;  // written once, before done_
  std::unique_ptr<Transport> data_;  // set before done_
  std::string prefix_;  // only the reading thread touches it after done_

  mutable internal::Mutex current_mu_;
  std::string description_ ABSL_GUARDED_BY(current_mu_);
  Transport* current_ ABSL_GUARDED_BY(current_mu_);  // what Interrupt/Shutdown act on
  bool shut_down_ ABSL_GUARDED_BY(current_mu_) = false;
};

}  // namespace

NegotiatingConnector::NegotiatingConnector(std::string target,
                                           std::unique_ptr<UnixSocketConnector> connector,
                                           std::vector<std::string> preference,
                                           std::vector<UpgradeableTransport> available,
                                           wire::TransportRequest request)
    : target_(std::move(target)),
      connector_(std::move(connector)),
      preference_(std::move(preference)),
      available_(std::move(available)),
      request_(std::move(request)) {}

absl::StatusOr<std::unique_ptr<Transport>> NegotiatingConnector::Connect(absl::Time deadline) {
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketTransport> socket,
                          connector_->ConnectSocket(deadline));
  return NegotiateAsClient(std::move(socket), target_, preference_, available_, request_,
                           deadline);
}

absl::StatusOr<std::unique_ptr<Transport>> NegotiateAsClient(
    std::unique_ptr<UnixSocketTransport> socket, absl::string_view target,
    const std::vector<std::string>& preference, const std::vector<UpgradeableTransport>& available,
    wire::TransportRequest request, absl::Time deadline) {
  if (preference.size() == 1 && preference[0] == kUnixTransportName) {
    return std::unique_ptr<Transport>(std::move(socket));
  }
  request.clear_transports();
  for (const std::string& name : preference) request.add_transports(name);
  absl::Status written =
      WriteNegotiationFrame(*socket, FrameType::kTransportRequest, request, {}, deadline);
  wire::TransportOffer offer;
  std::vector<ScopedFd> fds;
  if (!written.ok()) {
    // A server that refuses this peer sends its refusal and closes at once,
    // possibly before the request went out: look for it before giving up.
    absl::Status refusal = ReadNegotiationFrame(*socket, FrameType::kTransportOffer, &offer,
                                                &fds, absl::Now() + absl::Milliseconds(100));
    return absl::IsPermissionDenied(refusal) ? refusal : written;
  }
  absl::Status read = ReadNegotiationFrame(*socket, FrameType::kTransportOffer, &offer, &fds,
                                           deadline);
  if (!read.ok()) {
    return absl::Status(read.code(), absl::StrCat(target, ": transport negotiation failed: ",
                                                  read.message()));
  }
  if (offer.transport().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(target, ": the server refused the transport: ", offer.error()));
  }
  if (offer.transport() == kUnixTransportName) {
    return std::unique_ptr<Transport>(std::move(socket));
  }
  const UpgradeableTransport* chosen = Find(available, offer.transport());
  if (chosen == nullptr ||
      std::find(preference.begin(), preference.end(), offer.transport()) == preference.end()) {
    return absl::DataLossError(absl::StrCat(target, ": the server offered transport \"",
                                            offer.transport(), "\", which was not requested"));
  }
  // The upgraded transport gets a duplicate of the socket as its liveness
  // channel; the original is kept just long enough to send the ACK.
  IPCRPC_ASSIGN_OR_RETURN(ScopedFd control, socket->DuplicateSocket());
  absl::StatusOr<std::unique_ptr<Transport>> data =
      chosen->attach(offer, std::move(fds), std::move(control));
  wire::TransportAck ack;
  ack.set_ok(data.ok());
  if (!data.ok()) ack.set_error(std::string(data.status().message()));
  absl::Status sent =
      WriteNegotiationFrame(*socket, FrameType::kTransportAck, ack, {}, deadline);
  if (!data.ok()) {
    return absl::Status(data.status().code(),
                        absl::StrCat(target, ": could not attach to the server's ",
                                     chosen->name, ": ", data.status().message()));
  }
  IPCRPC_RETURN_IF_ERROR(sent);
  return std::unique_ptr<Transport>(std::make_unique<UpgradedTransport>(
      std::move(*data), socket->peer(), absl::StrCat(chosen->name, " via ", target)));
}

std::unique_ptr<Transport> NegotiateAsServer(
    std::unique_ptr<UnixSocketTransport> socket,
    std::shared_ptr<const std::vector<UpgradeableTransport>> allowed, bool allow_unix) {
  return std::make_unique<ServerNegotiatingTransport>(std::move(socket), std::move(allowed),
                                                      allow_unix);
}

NegotiatingListener::NegotiatingListener(std::unique_ptr<UnixSocketListener> listener,
                                         std::vector<UpgradeableTransport> allowed,
                                         bool allow_unix, PeerAdmission admit)
    : listener_(std::move(listener)),
      allowed_(std::make_shared<const std::vector<UpgradeableTransport>>(std::move(allowed))),
      allow_unix_(allow_unix),
      admit_(std::move(admit)) {}

absl::StatusOr<std::unique_ptr<Transport>> NegotiatingListener::Accept() {
  for (;;) {
    IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketTransport> socket,
                            listener_->AcceptSocket());
    absl::Status admitted = admit_ ? admit_(socket->peer()) : absl::OkStatus();
    if (admitted.ok()) return NegotiateAsServer(std::move(socket), allowed_, allow_unix_);
    refused_.fetch_add(1, std::memory_order_relaxed);
    // One small frame into an empty socket buffer: it does not block; the
    // deadline only bounds a pathological case.
    std::string out;
    internal::AppendRefusalFrame(admitted, &out);
    absl::string_view chunks[] = {out};
    socket->Write(chunks, absl::Now() + absl::Milliseconds(100)).IgnoreError();
    socket->Shutdown();
  }
}

}  // namespace ipcrpc
