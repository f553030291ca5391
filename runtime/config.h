// ipcrpc: the configuration file and environment variables.
//
// A process can choose and tune transports without being rebuilt:
//
//   IPCRPC_CONFIG=/etc/app/ipcrpc.textproto   a config::Config in protobuf
//                                             text format (proto/ipcrpc/config.proto)
//   IPCRPC_TRANSPORT=shm                      every channel of the process uses
//                                             this transport, whatever the
//                                             address or the file says
//
// CreateChannel(target) resolves `target` like this: the config entry whose
// `target` equals it (a name, the full address, or the socket path), else
// the "*" entry; a name without a scheme needs an entry with an `address`.
// The transport is IPCRPC_TRANSPORT if set, else the entry's `transport` if
// set, else the address's own. ServerBuilder applies the file's `server`
// section (allowed transports, tuning, message limit).
//
// Thread-safety: free functions; they read the environment and the file.

#ifndef IPCRPC_RUNTIME_CONFIG_H_
#define IPCRPC_RUNTIME_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/ipcrpc/config.pb.h"
#include "runtime/channel.h"

namespace ipcrpc {

inline constexpr char kConfigEnv[] = "IPCRPC_CONFIG";
inline constexpr char kTransportEnv[] = "IPCRPC_TRANSPORT";

// Parses text-format `text`; errors name `source` and the line.
absl::StatusOr<config::Config> ParseConfig(absl::string_view text, absl::string_view source);

// Reads the file IPCRPC_CONFIG names; an empty Config when it is unset.
absl::StatusOr<config::Config> LoadConfigFromEnvironment();

// How a channel to `target` is made.
struct ChannelPlan {
  std::string address;    // with its scheme, e.g. "unix:/run/x.sock"
  std::string transport;  // empty: as the address says
  config::TransportTuning tuning;
  ChannelOptions options;
};

// Resolves `target` (see the header comment). `env_transport` is the value
// of IPCRPC_TRANSPORT (empty if unset).
absl::StatusOr<ChannelPlan> PlanChannel(absl::string_view target, const ChannelOptions& options,
                                        const config::Config& config,
                                        absl::string_view env_transport);

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_CONFIG_H_
