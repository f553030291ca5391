#include "transports/testing/transport_contract.h"
#include "transports/unix_socket.h"

namespace ipcrpc::testing {
namespace {

absl::StatusOr<TransportPair> MakePair() {
  auto pair = MakeSocketPair();
  if (!pair.ok()) return pair.status();
  return TransportPair{std::move(pair->first), std::move(pair->second)};
}

INSTANTIATE_TEST_SUITE_P(SocketPair, TransportContractTest,
                         ::testing::Values(TransportFactory{"socketpair", &MakePair}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ipcrpc::testing
