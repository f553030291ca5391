#include "runtime/ipcrpc.h"

#include <cstdlib>
#include <utility>

#include "connect/address.h"

namespace ipcrpc {

absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(absl::string_view target,
                                                       const ChannelOptions& options,
                                                       const config::Config& config) {
  const char* env = std::getenv(kTransportEnv);
  IPCRPC_ASSIGN_OR_RETURN(ChannelPlan plan,
                          PlanChannel(target, options, config, env ? env : ""));
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<Connector> connector,
                          MakeConnector(plan.address, plan.transport, plan.tuning));
  return CreateChannelFromConnector(std::move(connector), plan.options);
}

absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(absl::string_view target,
                                                       const ChannelOptions& options) {
  IPCRPC_ASSIGN_OR_RETURN(config::Config config, LoadConfigFromEnvironment());
  return CreateChannel(target, options, config);
}

}  // namespace ipcrpc
