#include "runtime/ipcrpc.h"

#include <utility>

#include "transports/address.h"

namespace ipcrpc {

absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(absl::string_view address,
                                                       const ChannelOptions& options) {
  absl::StatusOr<std::unique_ptr<Connector>> connector = MakeConnector(address);
  if (!connector.ok()) return connector.status();
  return CreateChannelFromConnector(std::move(*connector), options);
}

}  // namespace ipcrpc
