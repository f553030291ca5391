// File descriptors in calls (ipcrpc.FileDescriptor, runtime/file_descriptor.h)
// between this process and a real test_server process, on every transport:
// contents checked, fields of every shape, streams in order, and every error
// path with a descriptor-leak check in both processes (/proc/PID/fd counts
// return to where they were). No test asserts a timing: counts are awaited.

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "connect/spawn.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/fd_service.ipcrpc.pb.h"
#include "tests/e2e/fd_util.h"
#include "tests/e2e/server_process.h"
#include "transports/unix_socket.h"
#include "wire/frame.h"

namespace ipcrpc::test {
namespace {

// Map fields go through protobuf's map reflection, which crashes under TSan
// with Debian's uninstrumented libprotobuf (see .bazelrc): left out there.
bool MapFieldsTestable() {
  const char* sanitizer = std::getenv("IPCRPC_SANITIZER");
  return sanitizer == nullptr || std::string(sanitizer) != "tsan";
}

class FdPassingTest : public ::testing::TestWithParam<std::string> {
 protected:
  explicit FdPassingTest(std::vector<std::string> server_args = {})
      : server_(std::move(server_args)) {}

  void SetUp() override {
    auto channel = CreateChannel(GetParam() + ":" + server_.socket_path());
    ASSERT_TRUE(channel.ok()) << channel.status();
    stub_ = FdService::NewStub(*channel);
    // One call first, so that the connection (and its descriptors) exist
    // before the baselines are taken.
    ClientContext ctx;
    FdRequest req;
    req.set_delay_ms(0);
    FdReply reply;
    absl::Status held = stub_->Hold(&ctx, req, &reply);
    ASSERT_TRUE(held.ok()) << held;
    client_fds_ = CountOpenFds();
    server_fds_ = CountOpenFds(server_.pid());
    server_fd_list_ = ListOpenFds(server_.pid());
  }

  // Both processes hold exactly the descriptors they held after SetUp.
  void ExpectNoLeaks() {
    EXPECT_LE(AwaitFdCountAtMost(0, client_fds_), client_fds_) << "client leaks descriptors";
    EXPECT_LE(AwaitFdCountAtMost(server_.pid(), server_fds_), server_fds_)
        << "server leaks descriptors; after SetUp:\n" << server_fd_list_ << "now:\n"
        << ListOpenFds(server_.pid());
  }

  // The server still answers on the same channel.
  void ExpectChannelWorks() {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_content("again");
    FdReply reply;
    absl::Status opened = stub_->Open(&ctx, req, &reply);
    ASSERT_TRUE(opened.ok()) << opened;
    auto fd = TakeFd(&ctx, reply.fd());
    ASSERT_TRUE(fd.ok()) << fd.status();
    EXPECT_EQ(ReadAll(fd->get()).value_or(""), "again0");
  }

  ServerProcess server_;
  std::unique_ptr<FdService::Stub> stub_;
  int client_fds_ = 0;
  int server_fds_ = 0;
  std::string server_fd_list_;
};

TEST_P(FdPassingTest, DescriptorsOpenedByTheServerAreReadableByTheClient) {
  for (const char* kind : {"file", "memfd", "pipe"}) {
    SCOPED_TRACE(kind);
    ClientContext ctx;
    FdRequest req;
    req.set_kind(kind);
    req.set_content(std::string("hello from the server, ") + kind);
    FdReply reply;
    ASSERT_TRUE(stub_->Open(&ctx, req, &reply).ok());
    absl::StatusOr<ScopedFd> fd = TakeFd(&ctx, reply.fd());
    ASSERT_TRUE(fd.ok()) << fd.status();
    EXPECT_EQ(ReadAll(fd->get()).value_or("?"), std::string(req.content()) + "0");
    // Taken once only.
    EXPECT_EQ(TakeFd(&ctx, reply.fd()).status().code(), absl::StatusCode::kNotFound);
  }
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, NestedRepeatedAndMapFieldsEachGetTheirOwnDescriptor) {
  if (!MapFieldsTestable()) GTEST_SKIP() << "map reflection under TSan (see .bazelrc)";
  ClientContext ctx;
  FdRequest req;
  req.set_kind("memfd");
  req.set_content("f");
  req.set_count(6);
  req.set_spread(true);
  FdReply reply;
  ASSERT_TRUE(stub_->Open(&ctx, req, &reply).ok());
  EXPECT_EQ(ctx.fds().received(), 6u);
  std::vector<const FileDescriptor*> fields = {&reply.fd(), &reply.nested().fd(),
                                               &reply.named().at("a")};
  for (const FileDescriptor& f : reply.fds()) fields.push_back(&f);
  ASSERT_EQ(fields.size(), 6u);
  for (size_t i = 0; i < fields.size(); ++i) {
    absl::StatusOr<ScopedFd> fd = TakeFd(&ctx, *fields[i]);
    ASSERT_TRUE(fd.ok()) << i << ": " << fd.status();
    EXPECT_EQ(ReadAll(fd->get()).value_or("?"), absl::StrCat("f", i));
  }
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, DescriptorsSentByTheClientAreReadByTheServer) {
  std::vector<ScopedFd> mine;
  auto make = [&](const char* kind, const char* content) {
    absl::StatusOr<ScopedFd> fd = OpenWithContent(kind, content);
    EXPECT_TRUE(fd.ok());
    mine.push_back(std::move(*fd));
    return mine.back().get();
  };
  ClientContext ctx;
  FdRequest req;
  SetFd(req.mutable_fd(), make("file", "one"));
  SetFd(req.add_fds(), make("pipe", "two"));
  const int shared = make("memfd", "three");
  SetFd(req.add_fds(), shared);
  SetFd(req.mutable_nested()->mutable_fd(), make("memfd", "four"));
  if (MapFieldsTestable()) SetFd(&(*req.mutable_named())["k"], make("file", "five"));
  FdReply reply;
  ASSERT_TRUE(stub_->Read(&ctx, req, &reply).ok());
  EXPECT_EQ(reply.content(),
            MapFieldsTestable() ? "|one|two|three|four|five" : "|one|two|three|four");
  mine.clear();
  ExpectNoLeaks();
}

// Message types that contain each other (Tree → Branch → Tree): descriptors
// at any depth travel, also under a field whose type the walk first met
// while the cycle was still being explored (before: the descriptor under
// `branch` stayed behind and the server found none).
TEST_P(FdPassingTest, DescriptorsDeepInsideMutuallyRecursiveTypesTravel) {
  std::vector<ScopedFd> mine;
  for (const char* content : {"top", "deep", "branch", "branch-deep"}) {
    mine.push_back(*OpenWithContent("memfd", content));
  }
  ClientContext ctx;
  FdRequest req;
  SetFd(req.mutable_tree()->mutable_fd(), mine[0].get());
  SetFd(req.mutable_tree()->mutable_branch()->mutable_tree()->mutable_branch()->mutable_tree()
            ->mutable_fd(),
        mine[1].get());
  SetFd(req.mutable_branch()->mutable_tree()->mutable_fd(), mine[2].get());
  SetFd(req.mutable_branch()->mutable_tree()->mutable_branch()->mutable_tree()->mutable_fd(),
        mine[3].get());
  FdReply reply;
  absl::Status s = stub_->Read(&ctx, req, &reply);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(reply.content(), "|top|deep|branch|branch-deep");
  mine.clear();
  ExpectNoLeaks();
}

// Messages of 128 KiB and more are serialized into the transport in pieces
// (FramedConnection::WriteMessage): the descriptors go with the first one.
TEST_P(FdPassingTest, ALargeMessageCarriesItsDescriptors) {
  std::vector<ScopedFd> mine;
  ClientContext ctx;
  FdRequest req;
  req.set_content(std::string(600 * 1024, 'L'));
  for (int i = 0; i < 3; ++i) {
    mine.push_back(*OpenWithContent("memfd", absl::StrCat("big", i)));
    SetFd(req.add_fds(), mine.back().get());
  }
  FdReply reply;
  absl::Status s = stub_->Read(&ctx, req, &reply);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(reply.content(), "|big0|big1|big2");
  mine.clear();
  ExpectChannelWorks();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, OneDescriptorNamedTwiceTravelsOnceAndServesBothFields) {
  absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "same");
  ASSERT_TRUE(fd.ok());
  ClientContext ctx;
  FdRequest req;
  SetFd(req.mutable_fd(), fd->get());
  SetFd(req.add_fds(), fd->get());
  FdReply reply;
  // The server takes the first field's descriptor; the second names the
  // same one, which is then gone: NOT_FOUND, as documented.
  absl::Status s = stub_->Read(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  fd->reset();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, ServerStreamDeliversEachDescriptorWithItsMessageInOrder) {
  ClientContext ctx;
  FdRequest req;
  req.set_kind("pipe");
  req.set_content("s");
  req.set_count(40);
  auto reader = stub_->OpenStream(&ctx, req);
  FdReply reply;
  int i = 0;
  while (reader->Read(&reply)) {
    EXPECT_EQ(reply.index(), i);
    absl::StatusOr<ScopedFd> fd = TakeFd(&ctx, reply.fd());
    ASSERT_TRUE(fd.ok()) << fd.status();
    EXPECT_EQ(ReadAll(fd->get()).value_or("?"), absl::StrCat("s", i));
    ++i;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(i, 40);
  ExpectNoLeaks();
}

// Flow control counts a MESSAGE's descriptor table (PROTOCOL.md §10) on both
// sides: a stream of small messages with descriptors fills a small window
// without the receiver ever seeing the sender overrun it.
TEST_P(FdPassingTest, DescriptorTablesCountAgainstTheFlowControlWindow) {
  ChannelOptions options;
  options.stream_window_bytes = 4096;
  auto channel = CreateChannel(GetParam() + ":" + server_.socket_path(), options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  auto stub = FdService::NewStub(*channel);
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_count(1500);  // ~10 bytes each with the table: several windows
    auto reader = stub->OpenStream(&ctx, req);
    absl::SleepFor(absl::Milliseconds(100));  // let the server fill the window
    FdReply reply;
    int n = 0;
    while (reader->Read(&reply)) {
      EXPECT_EQ(reply.index(), n);
      ++n;
    }
    absl::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(n, 1500);
  }
  {
    ClientContext ctx;
    FdReply reply;
    auto writer = stub->ReadStream(&ctx, &reply);
    absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "w");
    ASSERT_TRUE(fd.ok());
    for (int i = 0; i < 1500; ++i) {
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      ASSERT_TRUE(writer->Write(req));
    }
    ASSERT_TRUE(writer->WritesDone());
    absl::Status s = writer->Finish();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(reply.index(), 1500);
  }
}

// A handler that does not read cannot be made to hold descriptors without
// bound: past 1024 queued on the connection, the call fails.
TEST_P(FdPassingTest, AServerHoldsAtMost1024UnreadDescriptorsPerConnection) {
  absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "q");
  ASSERT_TRUE(fd.ok());
  {
    ClientContext ctx;
    FdReply reply;
    auto writer = stub_->ReadStream(&ctx, &reply);
    FdRequest first;
    first.set_delay_ms(1000);  // the handler stops reading for a second
    SetFd(first.mutable_fd(), fd->get());
    ASSERT_TRUE(writer->Write(first));
    int written = 1;
    for (; written < 1500; ++written) {
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    absl::Status s = writer->Finish();
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_NE(s.message().find("1024"), std::string::npos) << s;
  }
  fd->reset();
  ExpectChannelWorks();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, UntakenDescriptorsCloseWithTheNextMessageAndTheContext) {
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_count(30);
    auto reader = stub_->OpenStream(&ctx, req);
    FdReply reply;
    int n = 0;
    while (reader->Read(&reply)) {
      ++n;
      EXPECT_EQ(ctx.fds().received(), 1u);  // the last message's only
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(n, 30);
  }
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("file");
    req.set_count(5);
    FdReply reply;
    ASSERT_TRUE(stub_->Open(&ctx, req, &reply).ok());
  }
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, ClientStreamAndBidiCarryDescriptorsInOrder) {
  {
    ClientContext ctx;
    FdReply reply;
    auto writer = stub_->ReadStream(&ctx, &reply);
    for (int i = 0; i < 25; ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent(i % 2 ? "pipe" : "memfd", absl::StrCat(i));
      ASSERT_TRUE(fd.ok());
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      ASSERT_TRUE(writer->Write(req));
    }
    ASSERT_TRUE(writer->WritesDone());
    ASSERT_TRUE(writer->Finish().ok());
    std::string want;
    for (int i = 0; i < 25; ++i) absl::StrAppend(&want, "|", i);
    EXPECT_EQ(reply.content(), want);
    EXPECT_EQ(reply.index(), 25);
  }
  {
    ClientContext ctx;
    auto stream = stub_->Bidi(&ctx);
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent("file", absl::StrCat("bidi", i));
      ASSERT_TRUE(fd.ok());
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      ASSERT_TRUE(stream->Write(req));
      FdReply reply;
      ASSERT_TRUE(stream->Read(&reply));
      EXPECT_EQ(reply.index(), i);
      absl::StatusOr<ScopedFd> back = TakeFd(&ctx, reply.fd());
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(ReadAll(back->get()).value_or("?"), absl::StrCat("bidi", i));
    }
    ASSERT_TRUE(stream->WritesDone());
    EXPECT_TRUE(stream->Finish().ok());
  }
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, TheMostDescriptorsOneMessageMayCarryPassOneMoreIsRefused) {
  absl::StatusOr<ScopedFd> base = OpenWithContent("memfd", "m");
  ASSERT_TRUE(base.ok());
  std::vector<ScopedFd> dups;
  for (int i = 0; i < 254; ++i) dups.emplace_back(::dup(base->get()));
  {
    ClientContext ctx;
    FdRequest req;
    for (int i = 0; i < 254; ++i) SetFd(req.add_fds(), dups[i].get());
    FdReply reply;
    absl::Status s = stub_->Read(&ctx, req, &reply);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("253"), std::string::npos) << s;
  }
  {
    ClientContext ctx;
    FdRequest req;
    for (int i = 0; i < 253; ++i) SetFd(req.add_fds(), dups[i].get());
    FdReply reply;
    absl::Status s = stub_->Read(&ctx, req, &reply);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(reply.content().size(), 253u * 2);  // "|m" each
  }
  dups.clear();
  base->reset();
  ExpectChannelWorks();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, ADescriptorThatIsNotOpenIsInvalidArgumentBeforeSending) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);
  ::close(p[1]);
  ClientContext ctx;
  FdRequest req;
  SetFd(req.mutable_fd(), p[0]);
  FdReply reply;
  absl::Status s = stub_->Read(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ExpectChannelWorks();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, CancellingAStreamWithDescriptorsInFlightClosesThemOnBothSides) {
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_count(300);
    auto reader = stub_->OpenStream(&ctx, req);
    FdReply reply;
    ASSERT_TRUE(reader->Read(&reply));
    ctx.TryCancel();  // the rest, some already queued here, is dropped
    while (reader->Read(&reply)) {
    }
    EXPECT_EQ(reader->Finish().code(), absl::StatusCode::kCancelled);
  }
  {
    // A request whose handler never takes its descriptors, cancelled.
    std::vector<ScopedFd> mine;
    ClientContext ctx;
    FdRequest req;
    req.set_delay_ms(10000);
    for (int i = 0; i < 10; ++i) {
      mine.push_back(*OpenWithContent("memfd", "held"));
      SetFd(req.add_fds(), mine.back().get());
    }
    FdReply reply;
    ctx.set_timeout(absl::Milliseconds(50));
    absl::Status s = stub_->Hold(&ctx, req, &reply);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  }
  ExpectChannelWorks();
  ExpectNoLeaks();
}

TEST_P(FdPassingTest, AClientOutOfDescriptorsFailsThatCallOnly) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  absl::Status s;
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_count(40);
    FdReply reply;
    rlimit low = old;
    low.rlim_cur = static_cast<rlim_t>(client_fds_ + 20);  // room for 20, not 40
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    s = stub_->Open(&ctx, req, &reply);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("out of descriptors"), std::string::npos) << s;
  ExpectChannelWorks();
  ExpectNoLeaks();
}

INSTANTIATE_TEST_SUITE_P(Transports, FdPassingTest, ::testing::ValuesIn(TransportsUnderTest()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '+') c = '_';
                           }
                           return name;
                         });

// The server runs with RLIMIT_NOFILE 64: a request with 100 descriptors
// cannot be received there.
class FdServerLimitTest : public FdPassingTest {
 protected:
  FdServerLimitTest() : FdPassingTest({"--max_fds=64"}) {}
  void SetUp() override {
    if (const char* s = std::getenv("IPCRPC_SANITIZER"); s != nullptr && std::string(s) == "ubsan") {
      // UBSan's vptr check opens a pipe to read the object; a process out of
      // fds then aborts on a false "invalid vptr" (as in
      // resource_limits_test). The normal, ASan and TSan runs cover this.
      GTEST_SKIP() << "UBSan cannot check virtual calls in a process out of fds";
    }
    FdPassingTest::SetUp();
  }
};

TEST_P(FdServerLimitTest, AServerOutOfDescriptorsFailsThatCallOnly) {
  absl::StatusOr<ScopedFd> base = OpenWithContent("memfd", "x");
  ASSERT_TRUE(base.ok());
  std::vector<ScopedFd> dups;
  for (int i = 0; i < 100; ++i) dups.emplace_back(::dup(base->get()));
  ClientContext ctx;
  FdRequest req;
  for (ScopedFd& fd : dups) SetFd(req.add_fds(), fd.get());
  FdReply reply;
  absl::Status s = stub_->Read(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("out of descriptors"), std::string::npos) << s;
  dups.clear();
  base->reset();
  ExpectChannelWorks();
  ExpectNoLeaks();
}

INSTANTIATE_TEST_SUITE_P(Transports, FdServerLimitTest, ::testing::ValuesIn(TransportsUnderTest()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '+') c = '_';
                           }
                           return name;
                         });

// --- A peer that breaks the descriptor rules (raw unix socket). ---

std::string HelloFrame() {
  wire::Hello hello;
  hello.set_protocol_version(1);
  hello.set_max_fds_per_message(253);
  std::string out;
  internal::AppendProtoFrame(internal::FrameType::kHello, 0, hello, hello.ByteSizeLong(), &out);
  return out;
}

// Sends `bytes` with `fds` attached (SCM_RIGHTS).
bool SendWithFds(int socket, const std::string& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// true once the server has closed `socket` (it reads end-of-file).
bool ServerClosed(int socket) {
  for (;;) {
    std::string frame = ReceiveFrame(socket);
    if (frame.empty()) return true;  // end of stream (or 10 s of silence)
  }
}

class FdHostilePeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_fds_ = CountOpenFds(server_.pid());
    socket_ = ConnectRaw(server_.socket_path());
    ASSERT_GE(socket_, 0);
    ASSERT_TRUE(SendAll(socket_, HelloFrame()));
    ASSERT_GE(ReceiveFrame(socket_).size(), 16u);  // the server's HELLO
    ASSERT_TRUE(WaitUntilConsumed(socket_));
    ASSERT_TRUE(OpenWithContent("memfd", "evil").ok());
    fd_ = *OpenWithContent("memfd", "evil");
  }
  void TearDown() override {
    if (socket_ >= 0) ::close(socket_);
  }
  // The server closed the connection and holds no more descriptors than
  // before it was opened: nothing it received is left. (At most, not exactly:
  // a descriptor the server held only briefly at start-up may be gone.)
  void ExpectClosedWithoutLeaks() {
    EXPECT_TRUE(ServerClosed(socket_));
    ::close(socket_);
    socket_ = -1;
    EXPECT_LE(AwaitFdCountAtMost(server_.pid(), server_fds_), server_fds_)
        << "the server kept a descriptor it was sent";
  }

  ServerProcess server_;
  int socket_ = -1;
  int server_fds_ = 0;
  ScopedFd fd_;
};

TEST_F(FdHostilePeerTest, DescriptorsNoFrameDeclaresAreClosedAndEndTheConnection) {
  std::string ping;
  internal::AppendFrame(internal::FrameType::kPing, 0, "12345678", &ping);
  ASSERT_TRUE(SendWithFds(socket_, ping, {fd_.get(), fd_.get(), fd_.get()}));
  ExpectClosedWithoutLeaks();
}

TEST_F(FdHostilePeerTest, DescriptorsOnAFrameOtherThanMessageAreRefused) {
  std::string ping;
  internal::AppendFrame(internal::FrameType::kPing, 0, "12345678", &ping);
  ping[14] = 2;  // fd_count
  ASSERT_TRUE(SendWithFds(socket_, ping, {fd_.get(), fd_.get()}));
  ExpectClosedWithoutLeaks();
}

TEST_F(FdHostilePeerTest, ACountThatDiffersFromWhatCameIsRefused) {
  std::string message;
  internal::AppendFrame(internal::FrameType::kMessage, 1, std::string(8, 'x'), &message);
  message[14] = 3;
  ASSERT_TRUE(SendWithFds(socket_, message, {fd_.get(), fd_.get()}));
  ExpectClosedWithoutLeaks();
}

TEST_F(FdHostilePeerTest, DescriptorsDeclaredButNeverSentEndTheConnection) {
  std::string message;
  internal::AppendFrame(internal::FrameType::kMessage, 1, std::string(8, 'x'), &message);
  message[14] = 2;
  ASSERT_TRUE(SendAll(socket_, message));
  ExpectClosedWithoutLeaks();
}

TEST_F(FdHostilePeerTest, DescriptorsInsideAPayloadAreRefused) {
  std::string message;
  internal::AppendFrame(internal::FrameType::kMessage, 1, std::string(100, 'x'), &message);
  ASSERT_TRUE(SendAll(socket_, message.substr(0, 40)));
  ASSERT_TRUE(WaitUntilConsumed(socket_));
  ASSERT_TRUE(SendWithFds(socket_, message.substr(40), {fd_.get()}));
  ExpectClosedWithoutLeaks();
}

// The server counts what it closed (ServerStats::undeclared_fds_closed).
TEST(FdStatsTest, UndeclaredDescriptorsAreCountedInTheServerStats) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  ServerBuilder builder;
  builder.AddTransport(std::move(pair->first));
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Transport> peer = std::move(pair->second);
  std::string hello = HelloFrame();
  absl::string_view chunks[] = {hello};
  ASSERT_TRUE(peer->Write(chunks, absl::InfiniteFuture()).ok());
  std::string ping;
  internal::AppendFrame(internal::FrameType::kPing, 0, "12345678", &ping);
  absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "x");
  ASSERT_TRUE(fd.ok());
  int fds[] = {fd->get(), fd->get(), fd->get()};
  absl::string_view ping_chunks[] = {ping};
  ASSERT_TRUE(peer->WriteWithFds(ping_chunks, fds, absl::InfiniteFuture()).ok());
  // The server closes the connection: read until the end.
  char buf[256];
  for (;;) {
    auto n = peer->Read(absl::MakeSpan(buf), absl::Now() + absl::Seconds(20));
    if (!n.ok()) break;
  }
  uint64_t closed = 0;
  for (int i = 0; i < 2000 && closed < 3; ++i) {
    closed = (*server)->GetStats().undeclared_fds_closed;
    if (closed < 3) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(closed, 3u);
  (*server)->Shutdown();
}

// --- A peer that does not announce fd passing (the Python package, older
// versions): it is never sent a descriptor. ---

// A peer that writes a handle into a FileDescriptor field and sends no
// descriptor with it: the receiver's field names none, so PeekFd cannot be
// made to name one of the receiver's own descriptors (handle 1 would be its
// stdin, 4 most likely one of its sockets). Before, the number stayed as
// the peer wrote it whenever the frame carried no descriptors.
TEST(FdForgedHandleTest, AHandleWithNoDescriptorBehindItNamesNoneOnEitherSide) {
  ServerProcess server({"--generic_echo"});
  for (const std::string& transport : TransportsUnderTest()) {
    SCOPED_TRACE(transport);
    auto channel = CreateChannel(transport + ":" + server.socket_path());
    ASSERT_TRUE(channel.ok()) << channel.status();
    for (uint32_t handle : {1u, 4u, 1000u}) {
      ForgedRequest forged;
      forged.mutable_fd()->set_handle(handle);
      // Server side: the typed FdService reads it as an FdRequest.
      GenericStub generic(*channel);
      ClientContext ctx;
      ByteBuffer response;
      absl::Status s = generic.UnaryCall(&ctx, "/ipcrpc.test.FdService/Peek",
                                         ByteBuffer(forged.SerializeAsString()), &response);
      ASSERT_TRUE(s.ok()) << s;
      FdReply peeked;
      ASSERT_TRUE(peeked.ParseFromString(response.data()));
      EXPECT_EQ(peeked.content(), "-1") << "handle " << handle;
      // Client side: the generic echo returns the bytes, which this typed
      // stub reads as an FdReply.
      auto echo = FdEcho::NewStub(*channel);
      ClientContext echo_ctx;
      ForgedReply forged_reply;
      forged_reply.mutable_fd()->set_handle(handle);
      FdReply echoed;
      s = echo->Echo(&echo_ctx, forged_reply, &echoed);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(PeekFd(echoed.fd()), -1) << "handle " << handle;
      EXPECT_EQ(TakeFd(&echo_ctx, echoed.fd()).status().code(), absl::StatusCode::kNotFound);
    }
  }
}

TEST(FdNegotiationTest, APeerThatDidNotAnnounceFdPassingIsNeverSentOne) {
  auto pair = MakeSocketPair();
  ASSERT_TRUE(pair.ok());
  std::unique_ptr<Transport> peer = std::move(pair->second);
  // The peer: reads the client's HELLO, answers with a HELLO that lacks
  // max_fds_per_message (as ipcrpc-py's does), then records what else comes.
  std::string after_hello;
  std::thread peer_thread([&] {
    internal::FrameReader reader(*peer, 1 << 20);
    internal::Frame frame;
    if (!reader.ReadFrame(&frame, absl::Now() + absl::Seconds(10)).ok()) return;
    wire::Hello hello;
    hello.set_protocol_version(1);
    hello.set_agent("ipcrpc-py/test");
    std::string out;
    internal::AppendProtoFrame(internal::FrameType::kHello, 0, hello, hello.ByteSizeLong(), &out);
    absl::string_view chunks[] = {out};
    if (!peer->Write(chunks, absl::InfiniteFuture()).ok()) return;
    char buf[256];
    std::vector<FdBatch> batches;
    auto n = peer->ReadWithFdBatches(absl::MakeSpan(buf), &batches,
                                     absl::Now() + absl::Milliseconds(300));
    if (n.ok()) after_hello.assign(buf, *n);
    if (!batches.empty()) after_hello += "<descriptors>";
  });
  {
    auto stub = FdService::NewStub(CreateChannelFromTransport(std::move(pair->first)));
    absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", "no");
    ASSERT_TRUE(fd.ok());
    ClientContext ctx;
    FdRequest req;
    SetFd(req.mutable_fd(), fd->get());
    FdReply reply;
    absl::Status s = stub->Read(&ctx, req, &reply);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find("does not accept file descriptors"), std::string::npos) << s;
    peer_thread.join();
  }
  // Neither the CALL_START nor the MESSAGE went out, and no descriptor: at
  // most the CANCEL a locally failed call sends for its (unstarted) stream.
  EXPECT_EQ(after_hello.find("<descriptors>"), std::string::npos);
  ASSERT_EQ(after_hello.size() % internal::kFrameHeaderSize, 0u) << after_hello;
  for (size_t at = 0; at < after_hello.size(); at += internal::kFrameHeaderSize) {
    EXPECT_EQ(after_hello[at + 3], static_cast<char>(internal::FrameType::kCancel));
  }
}

// --- A spawned worker. ---

TEST(FdWorkerTest, ASpawnedWorkerOpensFilesForItsParent) {
  auto worker = WorkerProcess::Spawn({TestServerPath()});
  ASSERT_TRUE(worker.ok()) << worker.status();
  {
    auto stub = FdService::NewStub(CreateChannelFromTransport(worker->TakeTransport()));
    ClientContext ctx;
    FdRequest req;
    req.set_kind("file");
    req.set_content("opened by the worker ");
    FdReply reply;
    ASSERT_TRUE(stub->Open(&ctx, req, &reply).ok());
    absl::StatusOr<ScopedFd> fd = TakeFd(&ctx, reply.fd());
    ASSERT_TRUE(fd.ok()) << fd.status();
    EXPECT_EQ(ReadAll(fd->get()).value_or("?"), "opened by the worker 0");
  }
  auto status = worker->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(FdWorkerTest, AnUpgradedWorkerConnectionCarriesDescriptorsOnEveryTransport) {
  for (const std::string& transport : TransportsUnderTest()) {
    SCOPED_TRACE(transport);
    auto worker = WorkerProcess::Spawn({TestServerPath()});
    ASSERT_TRUE(worker.ok()) << worker.status();
    {
      auto upgraded = UpgradeConnection(worker->TakeSocket(), transport);
      ASSERT_TRUE(upgraded.ok()) << upgraded.status();
      auto stub = FdService::NewStub(CreateChannelFromTransport(std::move(*upgraded)));
      ClientContext ctx;
      FdRequest req;
      req.set_kind("memfd");
      req.set_content(transport);
      FdReply reply;
      ASSERT_TRUE(stub->Open(&ctx, req, &reply).ok());
      absl::StatusOr<ScopedFd> fd = TakeFd(&ctx, reply.fd());
      ASSERT_TRUE(fd.ok()) << fd.status();
      EXPECT_EQ(ReadAll(fd->get()).value_or("?"), transport + "0");
    }
    auto status = worker->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
  }
}

}  // namespace
}  // namespace ipcrpc::test
