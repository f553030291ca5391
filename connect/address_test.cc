// Tests for connect/address.h: address strings name their transport and
// socket, and every malformed one is refused with a message that names the
// problem.

#include "connect/address.h"

#include <string>

#include "gtest/gtest.h"

namespace ipcrpc {
namespace {

TEST(AddressTest, BadAddressesNameTheProblem) {
  auto none = MakeConnector("/tmp/x.sock");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("no scheme"), std::string::npos);
  auto tcp = MakeListener("tcp:127.0.0.1:80");
  EXPECT_EQ(tcp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tcp.status().message().find("\"tcp\""), std::string::npos);
  EXPECT_NE(tcp.status().message().find("shm, shm+sem, unix, msgq, fifo, auto"),
            std::string::npos)
      << tcp.status();
  EXPECT_EQ(MakeConnector("shm:").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeConnector("unix:/x", "carrier-pigeon").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto allowed = MakeListener("unix:/tmp/never", {"tcp"});
  EXPECT_EQ(allowed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(allowed.status().message().find("\"tcp\""), std::string::npos);
  EXPECT_EQ(MakeConnector("unix:").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeConnector("unix:/" + std::string(200, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AddressTest, ParsesTransportAndSocket) {
  auto a = ParseAddress("shm:/run/x.sock");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->transport, "shm");
  EXPECT_EQ(a->socket_address, "unix:/run/x.sock");
  auto b = ParseAddress("auto:@svc");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->transport, "auto");
  EXPECT_EQ(b->socket_address, "unix-abstract:svc");
  auto c = ParseAddress("unix-abstract:svc");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->transport, "unix");
  EXPECT_EQ(c->socket_address, "unix-abstract:svc");
}

}  // namespace
}  // namespace ipcrpc
