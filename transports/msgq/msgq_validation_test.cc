// Tests of the offers a msgq client refuses: a queue that does not exist,
// has the wrong mode, belongs to someone else or was made with a key, and
// malformed offers (queues.h has the checks).

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/msgq/msgq.h"
#include "transports/msgq/msgq_test_util.h"
#include "transports/testing/transport_contract.h"

namespace ipcrpc::msgq_test {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

// The contract suite (linked in for WriteAll/ReadExactly) runs in
// msgq_test; not here.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TransportContractTest);

class MsgqValidationTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (int id : foreign_) ::msgctl(id, IPC_RMID, nullptr);
  }
  // A queue made by the test, not by PrepareMsgq.
  int MakeQueue(int mode) {
    int id = ::msgget(IPC_PRIVATE, IPC_CREAT | mode);
    EXPECT_GE(id, 0) << errno;
    foreign_.push_back(id);
    return id;
  }
  absl::Status Attach(int c2s, int s2c, uint32_t fragment = 4096,
                      std::vector<ScopedFd> fds = {}) {
    wire::TransportOffer offer;
    offer.set_transport("msgq");
    offer.mutable_msgq()->set_client_to_server_id(c2s);
    offer.mutable_msgq()->set_server_to_client_id(s2c);
    offer.mutable_msgq()->set_max_fragment_bytes(fragment);
    return AttachOffer(offer, std::move(fds));
  }
  absl::Status AttachOffer(const wire::TransportOffer& offer, std::vector<ScopedFd> fds = {}) {
    ControlPair control = MakeControlPair();
    return AttachMsgq(offer, std::move(fds), std::move(control.client), {}).status();
  }
  std::vector<int> foreign_;
};

TEST_F(MsgqValidationTest, QueueThatDoesNotExist) {
  int gone = MakeQueue(0600);
  ASSERT_EQ(::msgctl(gone, IPC_RMID, nullptr), 0);
  int good = MakeQueue(0600);
  absl::Status s = Attach(gone, good);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("does not exist"), absl::string_view::npos) << s;
  s = Attach(good, gone);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(QueueExists(good));  // a failed attach removes nothing
}

TEST_F(MsgqValidationTest, QueueWithTheWrongMode) {
  int open_to_all = MakeQueue(0666);
  int good = MakeQueue(0600);
  absl::Status s = Attach(open_to_all, good);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("mode 0666"), absl::string_view::npos) << s;
}

TEST_F(MsgqValidationTest, QueueOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a queue away";
  int foreign = MakeQueue(0600);
  int good = MakeQueue(0600);
  msqid_ds ds;
  ASSERT_EQ(::msgctl(foreign, IPC_STAT, &ds), 0);
  ds.msg_perm.uid = 12345;
  if (::msgctl(foreign, IPC_SET, &ds) < 0) {
    // E.g. under Bazel's sandbox, whose user namespace maps no other uid.
    GTEST_SKIP() << "cannot give a queue to uid 12345 here (errno " << errno << ")";
  }
  absl::Status s = Attach(good, foreign);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("owned by uid 12345"), absl::string_view::npos) << s;
}

TEST_F(MsgqValidationTest, QueueMadeWithAKey) {
  key_t key = static_cast<key_t>(0x1b5e0000 + (::getpid() & 0xffff));
  int keyed = ::msgget(key, IPC_CREAT | IPC_EXCL | 0600);
  ASSERT_GE(keyed, 0) << errno;
  foreign_.push_back(keyed);
  absl::Status s = Attach(keyed, MakeQueue(0600));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
}

TEST_F(MsgqValidationTest, MalformedOffers) {
  int a = MakeQueue(0600), b = MakeQueue(0600);
  EXPECT_EQ(Attach(a, a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(-1, b).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(a, b, /*fragment=*/0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Attach(a, b, static_cast<uint32_t>(Msgmax() + 1)).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<ScopedFd> fds;
  fds.emplace_back(::dup(0));
  EXPECT_EQ(Attach(a, b, 4096, std::move(fds)).code(), absl::StatusCode::kInvalidArgument);
  wire::TransportOffer fifo;
  fifo.set_transport("fifo");
  fifo.mutable_fifo()->set_client_to_server_path("/nonexistent");
  absl::Status s = AttachOffer(fifo);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(QueueExists(a));
  EXPECT_TRUE(QueueExists(b));
}

}  // namespace
}  // namespace ipcrpc::msgq_test
