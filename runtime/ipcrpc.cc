#include "runtime/ipcrpc.h"

#include <cstdlib>
#include <utility>

#include "connect/address.h"
#include "runtime/channel_schemes.h"

namespace ipcrpc {

absl::StatusOr<std::shared_ptr<Channel>> CreateChannel(absl::string_view target,
                                                       const ChannelOptions& options,
                                                       const config::Config& config) {
  const char* env = std::getenv(kTransportEnv);
  IPCRPC_ASSIGN_OR_RETURN(ChannelPlan plan,
                          PlanChannel(target, options, config, env ? env : ""));
  // Schemes of other libraries (grpc:, grpcs:): IPCRPC_TRANSPORT and the
  // transport tuning do not apply to them.
  absl::StatusOr<std::shared_ptr<Channel>> foreign = CreateChannelForScheme(plan.address, plan.options);
  if (!absl::IsNotFound(foreign.status())) return foreign;
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

namespace ipcrpc::experimental {

absl::StatusOr<std::shared_ptr<Channel>> CreateChannelWithInterceptors(
    absl::string_view target, const ChannelOptions& options,
    std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> creators) {
  for (const auto& c : creators) {
    if (c == nullptr) return absl::InvalidArgumentError("a null client interceptor creator");
  }
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(target, options);
  if (!channel.ok()) return channel.status();
  return InterceptChannel(std::move(*channel), std::move(creators));
}

}  // namespace ipcrpc::experimental
