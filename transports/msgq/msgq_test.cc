// Tests of the SysV message queue transport: the Transport contract, the
// offer, fragments, wake-ups and deadlines, closing and queue removal.
// Offers the client refuses: msgq_validation_test.cc; a peer process killed:
// msgq_process_test.cc. Every test is checked for leaked queues and fds
// (msgq_test_util.h).

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
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

absl::StatusOr<testing::TransportPair> MakeContractPair() {
  IPCRPC_ASSIGN_OR_RETURN(MsgqPair pair, MakeMsgqPair());
  return testing::TransportPair{std::move(pair.client), std::move(pair.server)};
}

using testing::TransportContractTest;
INSTANTIATE_TEST_SUITE_P(Msgq, TransportContractTest,
                         ::testing::Values(testing::TransportFactory{"msgq", &MakeContractPair}),
                         [](const auto& info) { return info.param.name; });

// --- Set-up and offers -----------------------------------------------------

TEST(MsgqOfferTest, OffersTwoPrivateQueuesAndRemovesThemIfNeverCompleted) {
  auto pending = PrepareMsgq({});
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  EXPECT_EQ(offer.transport(), "msgq");
  EXPECT_TRUE(fds.empty());
  const wire::MsgqParams& p = offer.msgq();
  EXPECT_NE(p.client_to_server_id(), p.server_to_client_id());
  EXPECT_EQ(p.max_fragment_bytes(), Msgmax());
  for (int id : {p.client_to_server_id(), p.server_to_client_id()}) {
    msqid_ds ds;
    ASSERT_EQ(::msgctl(id, IPC_STAT, &ds), 0) << id;
    EXPECT_EQ(ds.msg_perm.mode & 0777, 0600u);
    EXPECT_EQ(ds.msg_perm.uid, ::geteuid());
    EXPECT_EQ(ds.msg_perm.__key, IPC_PRIVATE);
  }
  pending->reset();
  EXPECT_FALSE(QueueExists(p.client_to_server_id()));
  EXPECT_FALSE(QueueExists(p.server_to_client_id()));
}

TEST(MsgqOfferTest, FragmentSizeIsClampedToMsgmax) {
  MsgqOptions huge;
  huge.max_fragment_bytes = size_t{1} << 30;
  auto pending = PrepareMsgq(huge);
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  EXPECT_EQ(offer.msgq().max_fragment_bytes(), Msgmax());
}

TEST(MsgqTransportTest, DescribesItselfAndKnowsThePeer) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_NE(pair->client->description().find("client"), std::string::npos);
  EXPECT_NE(pair->server->description().find("server"), std::string::npos);
  EXPECT_EQ(pair->client->peer().pid, ::getpid());  // socketpair: the creator
  EXPECT_EQ(pair->server->peer().uid, ::getuid());
  EXPECT_EQ(pair->client->max_fds_per_write(), 253);  // ControlChannel::kMaxFdsPerRecord
}

// --- Fragments -------------------------------------------------------------

TEST(MsgqTransportTest, StreamIsCutIntoFragmentsOfTheAgreedSize) {
  MsgqOptions server_options, client_options;
  server_options.max_fragment_bytes = 100;
  client_options.max_fragment_bytes = 10;
  auto pair = MakeMsgqPair(server_options, client_options);
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(pair->params.max_fragment_bytes(), 100u);
  const std::string data = Pattern(1000);
  char buf[4096];

  // Server → client: fragments of 100, whatever the read buffer size.
  absl::string_view chunks[] = {absl::string_view(data).substr(0, 150), "",
                                absl::string_view(data).substr(150)};
  ASSERT_TRUE(pair->server->Write(chunks, absl::Now() + kPatience).ok());
  std::string got;
  while (got.size() < data.size()) {
    auto r = pair->client->Read(absl::MakeSpan(buf, sizeof(buf)), absl::Now() + kPatience);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, 100u);
    got.append(buf, *r);
  }
  EXPECT_EQ(got, data);

  // Client → server: the client asked for fragments of 10.
  ASSERT_TRUE(WriteAll(*pair->client, data).ok());
  got.clear();
  while (got.size() < data.size()) {
    auto r = pair->server->Read(absl::MakeSpan(buf, sizeof(buf)), absl::Now() + kPatience);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, 10u);
    got.append(buf, *r);
  }
  EXPECT_EQ(got, data);
}

TEST(MsgqTransportTest, ReadReturnsPartOfAFragmentAndKeepsTheRest) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_TRUE(WriteAll(*pair->client, "abcdefghij").ok());
  std::string got;
  char c;
  for (int i = 0; i < 10; ++i) {
    auto r = pair->server->Read(absl::MakeSpan(&c, 1), absl::Now() + kPatience);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(*r, 1u);
    got.push_back(c);
  }
  EXPECT_EQ(got, "abcdefghij");
}

// --- Wake-ups --------------------------------------------------------------

TEST(MsgqTransportTest, StaleInterruptWakeupNeitherAbortsTwiceNorEndsADeadlineEarly) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  Transport& t = *pair->server;
  char buf[8];
  // Interrupt before the read: the flag aborts this read and its wake-up
  // message stays queued.
  t.Interrupt();
  auto r = t.Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  // The stale wake-up must not end this read before its deadline.
  absl::Time start = absl::Now();
  r = t.Read(absl::MakeSpan(buf, 8), start + absl::Milliseconds(50));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  // Interrupt while data is waiting: the data comes first, the abort after.
  ASSERT_TRUE(WriteAll(*pair->client, "z").ok());
  t.Interrupt();
  r = t.Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  ASSERT_TRUE(r.ok()) << r.status();
  r = t.Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
}

TEST(MsgqTransportTest, AnEarlierReadDeadlineDoesNotEndALaterRead) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  char buf[8];
  for (int i = 0; i < 20; ++i) {
    auto r = pair->server->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(2));
    ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  }
  // A read with a deadline that is then satisfied by data leaves its timer
  // armed in the past tense; the next read (no deadline) must wait for data.
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE(WriteAll(*pair->client, "a").ok());
    absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(WriteAll(*pair->client, "b").ok());
  });
  auto r = pair->server->Read(absl::MakeSpan(buf, 8), absl::Now() + absl::Milliseconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(buf[0], 'a');
  r = pair->server->Read(absl::MakeSpan(buf, 8), absl::InfiniteFuture());
  writer.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(buf[0], 'b');
}

TEST(MsgqTransportTest, WriteDeadlineOnAFullQueueIsDeadlineExceededAndBreaksTheStream) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::string big = Pattern(1 << 20);
  absl::Time start = absl::Now();
  absl::Status s = WriteAll(*pair->client, big, start + absl::Milliseconds(50));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // transport.h: after a failed Write the stream must be closed; here it is.
  s = WriteAll(*pair->client, "more");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(MsgqTransportTest, ShutdownWakesAWriterBlockedOnAFullQueue) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::string big = Pattern(1 << 20);
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    pair->client->Shutdown();
  });
  absl::Status s = WriteAll(*pair->client, big, absl::InfiniteFuture());
  closer.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  char buf[8];
  auto r = pair->client->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(MsgqTransportTest, StrayBytesOnTheControlSocketEndTheConnectionAndSaySo) {
  // The control socket must stay silent after the upgrade
  // (transports/control_channel.h). Until the shared ControlChannel, msgq
  // took a byte for the peer's close; now the status says what happened.
  ControlPair control = MakeControlPair();
  int raw_client_control = control.client.get();
  auto pending = PrepareMsgq({});
  ASSERT_TRUE(pending.ok()) << pending.status();
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  auto client = AttachMsgq(offer, {}, std::move(control.client), {});
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = (*pending)->Complete(std::move(control.server), absl::Now() + kPatience);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WriteAll(**client, "before").ok());
  ASSERT_EQ(::write(raw_client_control, "!", 1), 1);  // behind the transport's back
  auto got = ReadExactly(**server, 6);  // what came before is still read
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "before");
  char buf[8];
  auto r = (*server)->Read(absl::MakeSpan(buf), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "must stay silent")) << r.status();
}

// --- Closing and removal ---------------------------------------------------

TEST(MsgqTransportTest, BytesSentBeforeShutdownAreStillDeliveredThenQueuesGo) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int c2s = pair->params.client_to_server_id();
  const int s2c = pair->params.server_to_client_id();
  const std::string last = Pattern(10000);  // two fragments, fits the queue
  ASSERT_TRUE(WriteAll(*pair->server, last).ok());
  pair->server->Shutdown();
  EXPECT_FALSE(QueueExists(c2s));  // nobody will read it
  auto got = ReadExactly(*pair->client, last.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == last);
  char buf[8];
  auto r = pair->client->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // The reader removed what it drained, before either side is destroyed.
  EXPECT_FALSE(QueueExists(s2c));
  EXPECT_EQ(WriteAll(*pair->client, "x").code(), absl::StatusCode::kUnavailable);
}

TEST(MsgqTransportTest, BytesSentBeforeDestructionAreStillDelivered) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int s2c = pair->params.server_to_client_id();
  ASSERT_TRUE(WriteAll(*pair->server, "goodbye").ok());
  // The closing side lingers while the live peer reads what it sent.
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    pair->server.reset();
  });
  absl::SleepFor(absl::Milliseconds(60));  // the close has begun
  auto got = ReadExactly(*pair->client, 7);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "goodbye");
  char buf[8];
  auto r = pair->client->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  closer.join();
  EXPECT_FALSE(QueueExists(s2c));
}

TEST(MsgqTransportTest, LingerEndsAndRemovesTheQueueWhenThePeerNeverReads) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int s2c = pair->params.server_to_client_id();
  ASSERT_TRUE(WriteAll(*pair->server, "unread").ok());
  absl::Time start = absl::Now();
  pair->server.reset();  // the client never reads: at most the linger
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(QueueExists(s2c));
}

TEST(MsgqTransportTest, DestroyingBothEndsRemovesBothQueues) {
  auto pair = MakeMsgqPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int c2s = pair->params.client_to_server_id();
  const int s2c = pair->params.server_to_client_id();
  ASSERT_TRUE(WriteAll(*pair->client, "unread").ok());
  ASSERT_TRUE(WriteAll(*pair->server, "unread too").ok());
  pair->client.reset();
  pair->server.reset();
  EXPECT_FALSE(QueueExists(c2s));
  EXPECT_FALSE(QueueExists(s2c));
}

}  // namespace
}  // namespace ipcrpc::msgq_test
