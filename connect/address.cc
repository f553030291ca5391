#include "connect/address.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "connect/negotiation.h"
#include "connect/pending_objects.h"
#include "transports/fifo/fifo.h"
#include "transports/msgq/msgq.h"
#include "transports/shm/shm_ring.h"
#include "transports/unix_socket.h"

namespace ipcrpc {
namespace {

constexpr char kAuto[] = "auto";

bool Contains(const std::vector<std::string>& v, absl::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

FifoOptions FifoOptionsFrom(const config::TransportTuning& tuning) {
  FifoOptions options;
  if (!tuning.fifo().parent_dir().empty()) options.parent_dir = tuning.fifo().parent_dir();
  return options;
}

ShmOptions ShmOptionsFrom(const config::TransportTuning& tuning, wire::ShmParams::Wake wake) {
  ShmOptions options;
  options.wake = wake;
  if (tuning.shm().ring_bytes() != 0) options.ring_bytes = tuning.shm().ring_bytes();
  if (tuning.shm().max_spin_micros() != 0) {
    options.max_spin = absl::Microseconds(tuning.shm().max_spin_micros());
  }
  options.spin = !tuning.shm().spin_off();
  return options;
}

// The largest ring a client's wish may get unless the server says otherwise
// (config: tuning { shm { max_ring_bytes } }).
constexpr uint64_t kDefaultMaxRingBytes = 4 << 20;

UpgradeableTransport ShmEntry(const char* name, ShmOptions options, uint64_t max_ring_bytes) {
  return UpgradeableTransport{
      name,
      [options, max_ring_bytes](const wire::TransportRequest& request, CreatedObjects*) {
        ShmOptions server = options;
        // A client's ring-size wish is honoured when PrepareShm accepts it
        // (a power of two in [4 KiB, 1 GiB]), up to the server's maximum
        // (the server commits the memory); otherwise the server's size holds.
        uint64_t wish = request.ring_bytes();
        if (wish >= 4096 && wish <= (uint64_t{1} << 30) && (wish & (wish - 1)) == 0) {
          server.ring_bytes = std::min(wish, max_ring_bytes);
        }
        return PrepareShm(server);
      },
      [options](const wire::TransportOffer& offer, std::vector<ScopedFd> fds, ScopedFd control) {
        return AttachShm(offer, std::move(fds), std::move(control), options);
      }};
}

// The transports a connection can move to, with `tuning` bound in.
std::vector<UpgradeableTransport> UpgradeableTransports(const config::TransportTuning& tuning) {
  std::vector<UpgradeableTransport> table;
  bool sem = tuning.shm().wake() == "semaphore";
  uint64_t max_ring = tuning.shm().max_ring_bytes();
  if (max_ring == 0) max_ring = kDefaultMaxRingBytes;
  max_ring = std::max<uint64_t>(max_ring, 4096);
  table.push_back(ShmEntry("shm",
                           ShmOptionsFrom(tuning, sem ? wire::ShmParams::SEMAPHORE
                                                      : wire::ShmParams::FUTEX),
                           max_ring));
  table.push_back(
      ShmEntry("shm+sem", ShmOptionsFrom(tuning, wire::ShmParams::SEMAPHORE), max_ring));
  FifoOptions fifo = FifoOptionsFrom(tuning);
  table.push_back(UpgradeableTransport{
      kFifoTransportName,
      [fifo](const wire::TransportRequest&, CreatedObjects* created) {
        return PrepareFifo(fifo, created);
      },
      [fifo](const wire::TransportOffer& offer, std::vector<ScopedFd> fds, ScopedFd control) {
        return AttachFifo(offer, std::move(fds), std::move(control), fifo);
      },
      /*creates_lasting_objects=*/true});
  MsgqOptions msgq;
  msgq.max_fragment_bytes = tuning.msgq().max_fragment_bytes();
  table.push_back(UpgradeableTransport{
      "msgq",
      [msgq](const wire::TransportRequest&, CreatedObjects* created) {
        return PrepareMsgq(msgq, created);
      },
      [msgq](const wire::TransportOffer& offer, std::vector<ScopedFd> fds, ScopedFd control) {
        return AttachMsgq(offer, std::move(fds), std::move(control), msgq);
      },
      /*creates_lasting_objects=*/true});
  return table;
}

std::vector<std::string> AutoPreference(const std::vector<UpgradeableTransport>& available) {
  std::vector<std::string> order;
  for (const std::string& name : KnownTransports()) {
    if (name == kAuto) continue;
    bool usable = name == kUnixTransportName ||
                  std::any_of(available.begin(), available.end(),
                              [&](const UpgradeableTransport& t) { return t.name == name; });
    if (usable) order.push_back(name);
  }
  return order;
}

bool AllowsUnix(const std::vector<std::string>& allowed) {
  return allowed.empty() || Contains(allowed, kUnixTransportName);
}

absl::Status UnknownTransport(absl::string_view address, absl::string_view transport);

// The upgradeable transports a server lets clients choose: `allowed` names
// (empty: all), checked.
absl::StatusOr<std::vector<UpgradeableTransport>> AllowedTransports(
    const std::vector<std::string>& allowed, const config::TransportTuning& tuning) {
  for (const std::string& name : allowed) {
    if (!Contains(KnownTransports(), name) || name == kAuto) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allowed transport \"", name, "\" is not a transport; supported: ",
          absl::StrJoin(KnownTransports(), ", ")));
    }
  }
  std::vector<UpgradeableTransport> table = UpgradeableTransports(tuning);
  if (!allowed.empty()) {
    table.erase(std::remove_if(table.begin(), table.end(),
                               [&](const UpgradeableTransport& t) {
                                 return !Contains(allowed, t.name);
                               }),
                table.end());
  }
  return table;
}

absl::Status UnknownTransport(absl::string_view address, absl::string_view transport) {
  return absl::InvalidArgumentError(absl::StrCat(
      "address \"", address, "\": transport \"", transport, "\" is not supported; supported: ",
      absl::StrJoin(KnownTransports(), ", ")));
}

}  // namespace

const std::vector<std::string>& KnownTransports() {
  static const auto* names = new std::vector<std::string>{
      "shm", "shm+sem", kUnixTransportName, "msgq", "fifo", kAuto};
  return *names;
}

absl::StatusOr<ParsedAddress> ParseAddress(absl::string_view address) {
  size_t colon = address.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address \"", address, "\" has no scheme; expected TRANSPORT:SOCKET with TRANSPORT one of ",
        absl::StrJoin(KnownTransports(), ", "), " (e.g. unix:/run/app.sock)"));
  }
  absl::string_view scheme = address.substr(0, colon);
  absl::string_view socket = address.substr(colon + 1);
  ParsedAddress parsed;
  if (scheme == "unix-abstract") {
    parsed.transport = kUnixTransportName;
    parsed.socket_address = std::string(address);
  } else if (Contains(KnownTransports(), scheme)) {
    parsed.transport = std::string(scheme);
    if (absl::StartsWith(socket, "@")) {
      parsed.socket_address = absl::StrCat("unix-abstract:", socket.substr(1));
    } else {
      parsed.socket_address = absl::StrCat("unix:", socket);
    }
  } else {
    return UnknownTransport(address, scheme);
  }
  if (socket.empty() || socket == "@") {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" names no socket after \"", scheme, ":\""));
  }
  return parsed;
}

absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(absl::string_view address,
                                                         absl::string_view transport,
                                                         const config::TransportTuning& tuning) {
  IPCRPC_ASSIGN_OR_RETURN(ParsedAddress parsed, ParseAddress(address));
  if (!transport.empty()) {
    if (!Contains(KnownTransports(), transport)) return UnknownTransport(address, transport);
    parsed.transport = std::string(transport);
  }
  std::vector<UpgradeableTransport> available = UpgradeableTransports(tuning);
  std::vector<std::string> preference;
  if (parsed.transport == kAuto) {
    preference = AutoPreference(available);
  } else if (parsed.transport == kUnixTransportName ||
             std::any_of(available.begin(), available.end(),
                         [&](const UpgradeableTransport& t) { return t.name == parsed.transport; })) {
    preference = {parsed.transport};
  } else {
    return absl::UnimplementedError(absl::StrCat(
        "address \"", address, "\": transport \"", parsed.transport,
        "\" is not available in this build"));
  }
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketConnector> socket,
                          UnixSocketConnector::Create(parsed.socket_address));
  std::string target = parsed.transport == kUnixTransportName
                           ? parsed.socket_address
                           : absl::StrCat(parsed.transport, ":", address.substr(address.find(':') + 1));
  wire::TransportRequest request;
  request.set_ring_bytes(tuning.shm().ring_bytes());
  return std::unique_ptr<Connector>(std::make_unique<NegotiatingConnector>(
      std::move(target), std::move(socket), std::move(preference), std::move(available),
      std::move(request)));
}

absl::StatusOr<std::unique_ptr<Listener>> MakeListener(absl::string_view address,
                                                       const std::vector<std::string>& allowed,
                                                       const config::TransportTuning& tuning,
                                                       mode_t socket_mode, PeerAdmission admit) {
  IPCRPC_ASSIGN_OR_RETURN(ParsedAddress parsed, ParseAddress(address));
  IPCRPC_ASSIGN_OR_RETURN(std::vector<UpgradeableTransport> table,
                          AllowedTransports(allowed, tuning));
  SweepStalePendingObjects();  // a killed server's half-negotiated FIFOs and queues
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<UnixSocketListener> listener,
                          UnixSocketListener::Listen(parsed.socket_address, socket_mode));
  return std::unique_ptr<Listener>(std::make_unique<NegotiatingListener>(
      std::move(listener), std::move(table), AllowsUnix(allowed), std::move(admit)));
}

absl::StatusOr<std::unique_ptr<Transport>> UpgradeConnection(
    std::unique_ptr<UnixSocketTransport> socket, absl::string_view transport,
    const config::TransportTuning& tuning, absl::Duration timeout) {
  std::string target = socket->description();
  if (!Contains(KnownTransports(), transport)) return UnknownTransport(target, transport);
  std::vector<UpgradeableTransport> available = UpgradeableTransports(tuning);
  std::vector<std::string> preference = transport == kAuto
                                            ? AutoPreference(available)
                                            : std::vector<std::string>{std::string(transport)};
  wire::TransportRequest request;
  request.set_ring_bytes(tuning.shm().ring_bytes());
  return NegotiateAsClient(std::move(socket), target, preference, available, std::move(request),
                           absl::Now() + timeout);
}

absl::StatusOr<std::unique_ptr<Transport>> AcceptUpgrades(
    std::unique_ptr<UnixSocketTransport> socket, const std::vector<std::string>& allowed,
    const config::TransportTuning& tuning) {
  IPCRPC_ASSIGN_OR_RETURN(std::vector<UpgradeableTransport> table,
                          AllowedTransports(allowed, tuning));
  return NegotiateAsServer(std::move(socket),
                           std::make_shared<const std::vector<UpgradeableTransport>>(
                               std::move(table)),
                           AllowsUnix(allowed));
}

}  // namespace ipcrpc
