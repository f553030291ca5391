#include "runtime/channel_schemes.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/sync.h"

namespace ipcrpc {
namespace {

struct Registry {
  internal::Mutex mu;
  std::map<std::string, ChannelFactory, std::less<>> factories ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* const registry = new Registry();  // never destroyed: used at exit
  return *registry;
}

}  // namespace

void RegisterChannelScheme(absl::string_view scheme, ChannelFactory factory) {
  Registry& registry = TheRegistry();
  internal::MutexLock lock(&registry.mu);
  registry.factories[std::string(scheme)] = std::move(factory);
}

absl::StatusOr<std::shared_ptr<Channel>> CreateChannelForScheme(absl::string_view address,
                                                                const ChannelOptions& options) {
  size_t colon = address.find(':');
  absl::string_view scheme = address.substr(0, colon == absl::string_view::npos ? 0 : colon);
  ChannelFactory factory;
  {
    Registry& registry = TheRegistry();
    internal::MutexLock lock(&registry.mu);
    auto it = registry.factories.find(scheme);
    if (it != registry.factories.end()) factory = it->second;
  }
  if (factory) return factory(address, options);
  if (scheme == "grpc" || scheme == "grpcs") {
    return absl::UnimplementedError(absl::StrCat(
        "\"", address, "\": the ", scheme,
        ": address scheme needs the gRPC bridge library, which is not linked into this "
        "program; add the Bazel dependency \"@ipcrpc//bridge:grpc_channel\" "
        "(docs/GRPC_BRIDGE.md)"));
  }
  return absl::NotFoundError(absl::StrCat("no channel factory for \"", scheme, ":\""));
}

}  // namespace ipcrpc
