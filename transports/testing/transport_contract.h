// ipcrpc test support: the contract every Transport must meet, as a
// parameterized GoogleTest suite.
//
// A transport's test provides a factory for connected pairs and instantiates
// the suite:
//
//   INSTANTIATE_TEST_SUITE_P(Shm, TransportContractTest,
//       ::testing::Values(TransportFactory{"shm", &MakeShmPair}));
//
// The pair's `left` and `right` are the two ends of one connection (for an
// upgraded transport: the client's and the server's, each owning its end of
// a control socketpair). Every test destroys both ends before it returns, so
// the kernel-object checks a transport's own tests make afterwards are
// meaningful.

#ifndef IPCRPC_TRANSPORTS_TESTING_TRANSPORT_CONTRACT_H_
#define IPCRPC_TRANSPORTS_TESTING_TRANSPORT_CONTRACT_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "transports/transport.h"

namespace ipcrpc::testing {

struct TransportPair {
  std::unique_ptr<Transport> left;
  std::unique_ptr<Transport> right;
};

struct TransportFactory {
  std::string name;
  std::function<absl::StatusOr<TransportPair>()> make;
};

inline std::ostream& operator<<(std::ostream& os, const TransportFactory& f) {
  return os << f.name;
}

// Writes `bytes` with one Write.
absl::Status WriteAll(Transport& t, absl::string_view bytes,
                      absl::Time deadline = absl::Now() + absl::Seconds(20));

// Reads exactly n bytes (or fails), checking every count Read returns.
absl::StatusOr<std::string> ReadExactly(Transport& t, size_t n,
                                        absl::Time deadline = absl::Now() + absl::Seconds(20));

class TransportContractTest : public ::testing::TestWithParam<TransportFactory> {
 protected:
  void SetUp() override;
  TransportPair pair_;
};

}  // namespace ipcrpc::testing

#endif  // IPCRPC_TRANSPORTS_TESTING_TRANSPORT_CONTRACT_H_
