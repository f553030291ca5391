#include "transports/msgq/msgq.h"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"
#include "transports/testing/transport_contract.h"
#include "transports/unix_socket.h"

namespace ipcrpc {
namespace {

using testing::ReadExactly;
using testing::WriteAll;

constexpr absl::Duration kPatience = absl::Seconds(20);

// --- Kernel-object bookkeeping ---------------------------------------------

// Ids of every message queue in this IPC namespace (/proc/sysvipc/msg).
std::set<int> QueueIds() {
  std::set<int> ids;
  std::ifstream in("/proc/sysvipc/msg");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    long key;
    int id;
    if (fields >> key >> id) ids.insert(id);
  }
  return ids;
}

// The kernel's count of queues in use (msgctl MSG_INFO), as ipcs reports it.
int QueueCount() {
  msginfo info{};
  if (::msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&info)) < 0) return -1;
  return info.msgpool;
}

bool QueueExists(int id) {
  msqid_ds ds;
  return ::msgctl(id, IPC_STAT, &ds) == 0;
}

// For removals another thread (the watcher) makes while this one returns.
bool QueueGoneWithin(int id, absl::Duration timeout) {
  absl::Time give_up = absl::Now() + timeout;
  while (QueueExists(id)) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

int OpenFdCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

size_t Msgmax() {
  std::ifstream in("/proc/sys/kernel/msgmax");
  size_t value = 0;
  in >> value;
  return value;
}

// Checks after every test (the contract suite's too) that it left no message
// queue and no fd behind. Leaks are reported as a failure of the whole run.
std::vector<std::string>* g_leaks = new std::vector<std::string>;

class LeakCheckListener : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override {
    queues_ = QueueIds();
    count_ = QueueCount();
    fds_ = OpenFdCount();
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    std::vector<int> leaked;
    for (int id : QueueIds()) {
      if (queues_.count(id) == 0) leaked.push_back(id);
    }
    std::string name = absl::StrCat(info.test_suite_name(), ".", info.name());
    if (!leaked.empty()) {
      g_leaks->push_back(absl::StrCat(name, " left message queues ",
                                      absl::StrJoin(leaked, ","), " (MSG_INFO count ",
                                      count_, " -> ", QueueCount(), ")"));
    }
    int fds = OpenFdCount();
    if (fds != fds_) {
      g_leaks->push_back(absl::StrCat(name, ": open fds ", fds_, " -> ", fds));
    }
  }
  std::set<int> queues_;
  int count_ = 0;
  int fds_ = 0;
};

class LeakCheckEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const std::string& leak : *g_leaks) ADD_FAILURE() << leak;
  }
};

[[maybe_unused]] const bool g_leak_check_installed = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheckListener);
  ::testing::AddGlobalTestEnvironment(new LeakCheckEnvironment);
  return true;
}();

// --- Making connected pairs ------------------------------------------------

struct ControlPair {
  ScopedFd client;
  ScopedFd server;
};

ControlPair MakeControlPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    ADD_FAILURE() << "socketpair: " << errno;
    return {};
  }
  return {ScopedFd(sv[0]), ScopedFd(sv[1])};
}

struct MsgqPair {
  std::unique_ptr<Transport> client;
  std::unique_ptr<Transport> server;
  wire::MsgqParams params;  // what the server offered
};

absl::StatusOr<MsgqPair> MakeMsgqPair(const MsgqOptions& server_options = {},
                                      const MsgqOptions& client_options = {}) {
  ControlPair control = MakeControlPair();
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<PendingTransport> pending,
                          PrepareMsgq(server_options));
  wire::TransportOffer offer;
  std::vector<int> fds;
  pending->FillOffer(&offer, &fds);
  if (!fds.empty()) return absl::InternalError("msgq offered fds");
  MsgqPair pair;
  pair.params = offer.msgq();
  IPCRPC_ASSIGN_OR_RETURN(pair.client, AttachMsgq(offer, {}, std::move(control.client),
                                                  client_options));
  IPCRPC_ASSIGN_OR_RETURN(pair.server, pending->Complete(std::move(control.server),
                                                         absl::Now() + absl::Seconds(5)));
  return pair;
}

absl::StatusOr<testing::TransportPair> MakeContractPair() {
  IPCRPC_ASSIGN_OR_RETURN(MsgqPair pair, MakeMsgqPair());
  return testing::TransportPair{std::move(pair.client), std::move(pair.server)};
}

using testing::TransportContractTest;
INSTANTIATE_TEST_SUITE_P(Msgq, TransportContractTest,
                         ::testing::Values(testing::TransportFactory{"msgq", &MakeContractPair}),
                         [](const auto& info) { return info.param.name; });

// --- Helpers ---------------------------------------------------------------

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return s;
}

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
  EXPECT_EQ(pair->client->max_fds_per_write(), 0);
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

// --- Validation of offers --------------------------------------------------

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

// --- Across processes ------------------------------------------------------

// Forks a child that attaches to `offer` over `control.client` and then
// either echoes what it reads or (echo = false) reads nothing. The child
// never returns into the test and never runs destructors.
pid_t ForkClient(const wire::TransportOffer& offer, ControlPair& control, bool echo) {
  pid_t pid = ::fork();
  if (pid != 0) {
    control.client.reset();
    return pid;
  }
  ::close(control.server.release());
  auto t = AttachMsgq(offer, {}, std::move(control.client), {});
  if (!t.ok()) ::_exit(2);
  if (!echo) {
    for (;;) ::pause();
  }
  char buf[4096];
  for (;;) {
    auto r = (*t)->Read(absl::MakeSpan(buf, sizeof(buf)), absl::InfiniteFuture());
    if (!r.ok()) ::_exit(0);
    absl::string_view chunks[] = {absl::string_view(buf, *r)};
    if (!(*t)->Write(chunks, absl::InfiniteFuture()).ok()) ::_exit(0);
  }
}

struct ChildServer {
  pid_t pid = -1;
  std::unique_ptr<Transport> server;
  wire::MsgqParams params;
};

ChildServer StartChild(bool echo) {
  ChildServer child;
  ControlPair control = MakeControlPair();
  auto pending = PrepareMsgq({});
  EXPECT_TRUE(pending.ok()) << pending.status();
  if (!pending.ok()) return child;
  wire::TransportOffer offer;
  std::vector<int> fds;
  (*pending)->FillOffer(&offer, &fds);
  child.params = offer.msgq();
  child.pid = ForkClient(offer, control, echo);
  EXPECT_GT(child.pid, 0);
  auto server = (*pending)->Complete(std::move(control.server), absl::Now() + kPatience);
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) child.server = std::move(*server);
  return child;
}

TEST(MsgqProcessTest, PeerKilledMidReadIsUnavailableAndTheQueuesAreRemoved) {
  ChildServer child = StartChild(/*echo=*/true);
  ASSERT_NE(child.server, nullptr);
  ASSERT_TRUE(WriteAll(*child.server, "ping").ok());
  auto echoed = ReadExactly(*child.server, 4);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "ping");

  absl::Time killed_at;
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    killed_at = absl::Now();
    ::kill(child.pid, SIGKILL);
  });
  char buf[8];
  auto r = child.server->Read(absl::MakeSpan(buf, 8), absl::Now() + kPatience);
  absl::Time returned_at = absl::Now();
  killer.join();
  int wstatus = 0;
  ::waitpid(child.pid, &wstatus, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(returned_at - killed_at, absl::Seconds(5));
  std::cout << "[ info ] Read returned " << (returned_at - killed_at)
            << " after SIGKILL of the peer\n";
  // Whoever is still alive removes the queues, before this side closes.
  EXPECT_TRUE(QueueGoneWithin(child.params.client_to_server_id(), absl::Seconds(5)));
  EXPECT_TRUE(QueueGoneWithin(child.params.server_to_client_id(), absl::Seconds(5)));
  EXPECT_EQ(WriteAll(*child.server, "x").code(), absl::StatusCode::kUnavailable);
}

TEST(MsgqProcessTest, PeerKilledWhileAWriteWaitsForRoomIsUnavailable) {
  ChildServer child = StartChild(/*echo=*/false);
  ASSERT_NE(child.server, nullptr);
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    ::kill(child.pid, SIGKILL);
  });
  absl::Time start = absl::Now();
  absl::Status s = WriteAll(*child.server, Pattern(1 << 20), absl::InfiniteFuture());
  killer.join();
  int wstatus = 0;
  ::waitpid(child.pid, &wstatus, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(QueueGoneWithin(child.params.client_to_server_id(), absl::Seconds(5)));
  EXPECT_TRUE(QueueGoneWithin(child.params.server_to_client_id(), absl::Seconds(5)));
}

}  // namespace
}  // namespace ipcrpc
