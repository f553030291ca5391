#include "transports/address.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "transports/unix_socket.h"

namespace ipcrpc {
namespace {

constexpr absl::string_view kSupported = "unix:PATH, unix-abstract:NAME";

absl::string_view Scheme(absl::string_view address) {
  size_t colon = address.find(':');
  return colon == absl::string_view::npos ? absl::string_view() : address.substr(0, colon);
}

absl::Status UnsupportedAddress(absl::string_view address) {
  absl::string_view scheme = Scheme(address);
  if (scheme.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address \"", address, "\" has no scheme; supported: ", kSupported));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "address \"", address, "\": transport \"", scheme,
      "\" is not supported; supported: ", kSupported));
}

bool IsUnix(absl::string_view address) {
  absl::string_view scheme = Scheme(address);
  return scheme == "unix" || scheme == "unix-abstract";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(absl::string_view address) {
  if (IsUnix(address)) {
    auto c = UnixSocketConnector::Create(address);
    if (!c.ok()) return c.status();
    return std::unique_ptr<Connector>(std::move(*c));
  }
  return UnsupportedAddress(address);
}

absl::StatusOr<std::unique_ptr<Listener>> MakeListener(absl::string_view address) {
  if (IsUnix(address)) {
    auto l = UnixSocketListener::Listen(address);
    if (!l.ok()) return l.status();
    return std::unique_ptr<Listener>(std::move(*l));
  }
  return UnsupportedAddress(address);
}

}  // namespace ipcrpc
