// Zero-copy shared buffers (ipcrpc.SharedBuffer, runtime/shared_buffer.h)
// between this process and a real test_server process: contents at several
// sizes both ways, fields of every shape, streams in order, on every
// transport; space reused once released; the pool cap; a sender that
// scribbles after sending; a peer killed while holding buffers (its peer's
// mappings and descriptors go back to where they were); hostile frames over
// a raw socket; a peer without the feature. No test asserts a timing: counts
// are awaited.

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <dirent.h>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/ipcrpc.h"
#include "runtime/shared_buffer.h"
#include "tests/e2e/fd_util.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/shared_buffer_pattern.h"
#include "tests/e2e/shared_buffer_service.ipcrpc.pb.h"
#include "wire/frame.h"
#include "wire/shared_buffer_format.h"

namespace ipcrpc::test {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// The shared-buffer segments `pid` (0: this process) has mapped: count and
// bytes (lines of /proc/PID/maps naming the memfd).
struct Mappings {
  int count = 0;
  uint64_t bytes = 0;
};
Mappings SegmentMappings(pid_t pid = 0) {
  std::ifstream maps(pid == 0 ? std::string("/proc/self/maps")
                              : absl::StrCat("/proc/", pid, "/maps"));
  Mappings m;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:ipcrpc-shared-buffer") == std::string::npos) continue;
    ++m.count;
    uint64_t start = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    uint64_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    m.bytes += end - start;
  }
  return m;
}

// Waits (up to 20 s; not a timing assertion) for `pid`'s segment mappings
// to number `want`; returns the last count.
int AwaitMappings(pid_t pid, int want) {
  int now = SegmentMappings(pid).count;
  for (int i = 0; i < 2000 && now != want; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    now = SegmentMappings(pid).count;
  }
  return now;
}

std::vector<std::string> DevShm() {
  std::vector<std::string> names;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t PatternChecksum(uint64_t size, uint32_t seed, uint64_t hash = 14695981039346656037ull) {
  std::vector<uint8_t> bytes(size);
  FillPattern(absl::MakeSpan(bytes), seed);
  return Fnv1a(bytes, hash);
}

std::string Method(absl::string_view name) {
  return absl::StrCat("/ipcrpc.test.SharedBufferService/", name);
}

// --- Every transport: contents, shapes, streams, reuse. ---

class SharedBufferTest : public ::testing::TestWithParam<std::string> {
 protected:
  SharedBufferTest() : server_({"--shared_buffer_pool_bytes=134217728",
                                "--shared_buffer_arena_bytes=4194304"}) {}

  void SetUp() override {
    shm_before_ = DevShm();
    ChannelOptions options;
    options.shared_buffer_pool_bytes = 128 * kMiB;
    options.shared_buffer_arena_bytes = 4 * kMiB;
    auto channel = CreateChannel(GetParam() + ":" + server_.socket_path(), options);
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
    stub_ = SharedBufferService::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    // Nothing of ours is left mapped once the channel is gone, and nothing
    // ever appears in /dev/shm.
    EXPECT_EQ(AwaitMappings(0, 0), 0);
    EXPECT_EQ(DevShm(), shm_before_);
  }

  // A buffer of `size` bytes of Pattern(seed).
  SharedBufferWriter Filled(uint64_t size, uint32_t seed) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*channel_, size);
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return {};
    FillPattern(w->data(), seed);
    return std::move(*w);
  }

  ServerProcess server_;
  std::vector<std::string> shm_before_;
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<SharedBufferService::Stub> stub_;
};

TEST_P(SharedBufferTest, ContentArrivesBothWaysAtEverySize) {
  for (uint64_t size : {uint64_t{1}, 64 * uint64_t{1024}, kMiB, 64 * kMiB}) {
    SCOPED_TRACE(absl::StrCat("size ", size));
    SharedBufferWriter w = Filled(size, 3);
    ASSERT_TRUE(w.valid());
    ClientContext ctx;
    BufferRequest req;
    SetSharedBuffer(req.mutable_buffer(), w);
    req.set_size(size);
    req.set_seed(11);
    BufferReply reply;
    ASSERT_TRUE(stub_->Exchange(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.bytes_read(), size);
    EXPECT_EQ(reply.checksum(), PatternChecksum(size, 3));
    absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->size(), size);
    EXPECT_EQ(FirstPatternMismatch(v->data(), 11), -1);
    // Taken once only.
    EXPECT_EQ(TakeSharedBuffer(&ctx, reply.buffer()).status().code(),
              absl::StatusCode::kNotFound);
  }
}

TEST_P(SharedBufferTest, RepeatedAndNestedFieldsAndOneBufferNamedTwice) {
  std::vector<SharedBufferWriter> writers;
  for (uint32_t i = 0; i < 4; ++i) writers.push_back(Filled(1000 + i, i));
  ClientContext ctx;
  BufferRequest req;
  SetSharedBuffer(req.mutable_buffer(), writers[0]);
  SetSharedBuffer(req.add_buffers(), writers[1]);
  SetSharedBuffer(req.add_buffers(), writers[2]);
  SetSharedBuffer(req.add_buffers(), writers[1]);  // the same buffer again
  SetSharedBuffer(req.mutable_nested()->mutable_buffer(), writers[3]);
  BufferReply reply;
  absl::Status s = stub_->Exchange(&ctx, req, &reply);
  // The second field naming buffer 1 finds it taken: one reference per message.
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  // Without the duplicate, all four arrive in order.
  req.mutable_buffers()->RemoveLast();
  ClientContext ctx2;
  ASSERT_TRUE(stub_->Exchange(&ctx2, req, &reply).ok());
  uint64_t want = PatternChecksum(1000, 0);
  want = PatternChecksum(1001, 1, want);
  want = PatternChecksum(1002, 2, want);
  want = PatternChecksum(1003, 3, want);
  EXPECT_EQ(reply.checksum(), want);
}

TEST_P(SharedBufferTest, StreamsCarryBuffersInOrder) {
  {  // server → client
    ClientContext ctx;
    BufferRequest req;
    req.set_size(256 * 1024);
    req.set_seed(100);
    req.set_count(8);
    auto reader = stub_->Produce(&ctx, req);
    BufferReply reply;
    uint32_t n = 0;
    while (reader->Read(&reply)) {
      EXPECT_EQ(reply.index(), n);
      absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(FirstPatternMismatch(v->data(), 100 + n), -1) << n;
      ++n;
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(n, 8u);
  }
  {  // client → server
    ClientContext ctx;
    BufferReply reply;
    auto writer = stub_->Consume(&ctx, &reply);
    uint64_t want = 14695981039346656037ull;
    for (uint32_t i = 0; i < 8; ++i) {
      SharedBufferWriter w = Filled(100000 + i, 200 + i);
      BufferRequest req;
      SetSharedBuffer(req.mutable_buffer(), w);
      ASSERT_TRUE(writer->Write(req));
      want = PatternChecksum(100000 + i, 200 + i, want);
    }  // each writer dropped after its Write
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(reply.checksum(), want);
  }
  {  // both ways
    ClientContext ctx;
    auto stream = stub_->Mirror(&ctx);
    for (uint32_t i = 0; i < 8; ++i) {
      SharedBufferWriter w = Filled(5000 * (i + 1), 300 + i);
      BufferRequest req;
      SetSharedBuffer(req.mutable_buffer(), w);
      ASSERT_TRUE(stream->Write(req));
      BufferReply reply;
      ASSERT_TRUE(stream->Read(&reply));
      EXPECT_EQ(reply.index(), i);
      absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(v->size(), 5000u * (i + 1));
      EXPECT_EQ(FirstPatternMismatch(v->data(), 300 + i), -1);
    }
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }
}

// Released space is reused: more bytes go each way than either pool's
// cap (20 x 8 MiB > 128 MiB), so a release that never arrived would end in
// RESOURCE_EXHAUSTED.
TEST_P(SharedBufferTest, ReleasedSpaceIsReusedBothWays) {
  for (int i = 0; i < 20; ++i) {
    SharedBufferWriter w = Filled(8 * kMiB, i);
    ClientContext ctx;
    BufferRequest req;
    SetSharedBuffer(req.mutable_buffer(), w);
    req.set_size(8 * kMiB);
    req.set_seed(i);
    BufferReply reply;
    absl::Status s = stub_->Exchange(&ctx, req, &reply);
    ASSERT_TRUE(s.ok()) << i << ": " << s;
    absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->data()[12345], PatternByte(i, 12345));
  }
  // Neither side grew past its cap.
  EXPECT_LE(SegmentMappings(server_.pid()).bytes, 2 * 128 * kMiB);
}

INSTANTIATE_TEST_SUITE_P(Transports, SharedBufferTest,
                         ::testing::ValuesIn(TransportsUnderTest()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '+') c = '_';
                           }
                           return name;
                         });

// --- One transport is enough for what follows (the machinery is shared). ---

class SharedBufferLimitsTest : public ::testing::Test {
 protected:
  std::shared_ptr<Channel> Connect(const ServerProcess& server, ChannelOptions options = {},
                                   const std::string& transport = "shm") {
    auto channel = CreateChannel(transport + ":" + server.socket_path(), options);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.ok() ? *channel : nullptr;
  }
};

TEST_F(SharedBufferLimitsTest, OneGibibyteBothWays) {
  ServerProcess server;
  std::shared_ptr<Channel> channel = Connect(server);
  auto stub = SharedBufferService::NewStub(channel);
  const uint64_t size = uint64_t{1} << 30;
  const uint64_t stride = 4093;  // one byte per page or so: checked, not every byte touched
  absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*channel, size);
  ASSERT_TRUE(w.ok()) << w.status();
  FillPatternSampled(w->data(), 5, stride);
  ClientContext ctx;
  BufferRequest req;
  SetSharedBuffer(req.mutable_buffer(), *w);
  req.set_size(size);
  req.set_seed(6);
  req.set_stride(stride);
  BufferReply reply;
  ASSERT_TRUE(stub->Exchange(&ctx, req, &reply).ok());
  uint64_t want = 14695981039346656037ull;
  for (uint64_t i = 0; i < size; i += stride) {
    const uint8_t b = PatternByte(5, i);
    want = Fnv1a(absl::MakeConstSpan(&b, 1), want);
  }
  const uint8_t last = PatternByte(5, size - 1);
  want = Fnv1a(absl::MakeConstSpan(&last, 1), want);
  EXPECT_EQ(reply.bytes_read(), size);
  EXPECT_EQ(reply.checksum(), want);
  absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), size);
  EXPECT_EQ(FirstSampledMismatch(v->data(), 6, stride), -1);
}

// A receiver that never releases: the sender's pool stops at its cap with
// RESOURCE_EXHAUSTED, and what it maps stays under the cap; once released,
// the space is used again.
TEST_F(SharedBufferLimitsTest, APeerThatNeverReleasesMeetsThePoolCap) {
  ServerProcess server;
  ChannelOptions options;
  options.shared_buffer_pool_bytes = 16 * kMiB;
  options.shared_buffer_arena_bytes = 2 * kMiB;
  std::shared_ptr<Channel> channel = Connect(server, options);
  auto stub = SharedBufferService::NewStub(channel);
  absl::Status refused;
  int sent = 0;
  for (int i = 0; i < 100 && refused.ok(); ++i) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*channel, kMiB);
    if (!w.ok()) {
      refused = w.status();
      break;
    }
    FillPattern(w->data(), i);
    ClientContext ctx;
    BufferRequest req;
    SetSharedBuffer(req.mutable_buffer(), *w);
    BufferReply reply;
    ASSERT_TRUE(stub->Hoard(&ctx, req, &reply).ok());
    ++sent;
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("peer has not released"), std::string::npos) << refused;
  EXPECT_EQ(sent, 16);
  EXPECT_LE(SegmentMappings().bytes, 16 * kMiB);
  EXPECT_LE(SegmentMappings(server.pid()).bytes, 16 * kMiB);  // what the server maps of ours
  ClientContext ctx;
  BufferReply reply;
  ASSERT_TRUE(stub->ReleaseHoard(&ctx, BufferRequest(), &reply).ok());
  EXPECT_EQ(reply.index(), 16u);
  // The releases travel before ReleaseHoard's response: the space is free.
  absl::StatusOr<SharedBufferWriter> again = AllocateSharedBuffer(*channel, 8 * kMiB);
  EXPECT_TRUE(again.ok()) << again.status();
}

// A client that only sends (a client stream) reads nothing while it
// writes: its pool, found full, reads the releases already waiting. Ten
// times the cap goes out in one stream.
TEST_F(SharedBufferLimitsTest, AClientStreamingBuffersOutReusesReleasedSpace) {
  ServerProcess server;
  ChannelOptions options;
  options.shared_buffer_pool_bytes = 8 * kMiB;
  options.shared_buffer_arena_bytes = 2 * kMiB;
  std::shared_ptr<Channel> channel = Connect(server, options);
  auto stub = SharedBufferService::NewStub(channel);
  ClientContext ctx;
  BufferReply reply;
  auto writer = stub->Consume(&ctx, &reply);
  uint64_t want = 14695981039346656037ull;
  for (uint32_t i = 0; i < 80; ++i) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*channel, kMiB);
    for (int retry = 0; retry < 2000 && absl::IsResourceExhausted(w.status()); ++retry) {
      absl::SleepFor(absl::Milliseconds(1));  // the server has not read that far yet
      w = AllocateSharedBuffer(*channel, kMiB);
    }
    ASSERT_TRUE(w.ok()) << i << ": " << w.status();
    FillPattern(w->data(), i);
    BufferRequest req;
    SetSharedBuffer(req.mutable_buffer(), *w);
    ASSERT_TRUE(writer->Write(req));
    want = PatternChecksum(kMiB, i, want);
  }
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(reply.checksum(), want);
  EXPECT_LE(SegmentMappings().bytes, 8 * kMiB);
}

// The sender keeps writing into a buffer it sent: the receiver reads it
// without faulting, sees it change (as docs/SECURITY.md warns), and a
// Snapshot() is a private copy that does not.
TEST_F(SharedBufferLimitsTest, ASenderThatScribblesAfterSendingCannotHurtTheReceiver) {
  ServerProcess server;
  std::shared_ptr<Channel> channel = Connect(server);
  auto stub = SharedBufferService::NewStub(channel);
  ClientContext ctx;
  BufferRequest req;
  req.set_size(kMiB);
  req.set_seed(1);
  auto reader = stub->Scribble(&ctx, req);
  BufferReply reply;
  ASSERT_TRUE(reader->Read(&reply));
  absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), kMiB);
  bool changed = false;
  for (int i = 0; i < 100000 && !changed; ++i) {
    changed = FirstPatternMismatch(v->data().subspan(0, 4096), 1) != -1;
  }
  EXPECT_TRUE(changed) << "the server never scribbled";
  // Every byte of the span stays readable while it changes.
  uint64_t sum = 0;
  for (int pass = 0; pass < 5; ++pass) {
    for (uint8_t b : v->data()) sum += b;
  }
  (void)sum;
  const std::string snapshot = v->Snapshot();
  const uint64_t first = Fnv1a(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(snapshot.data()), snapshot.size()));
  // The shared bytes move on; the snapshot does not.
  bool shared_moved = false;
  for (int i = 0; i < 1000 && !shared_moved; ++i) {
    shared_moved = std::memcmp(v->data().data(), snapshot.data(), snapshot.size()) != 0;
  }
  EXPECT_TRUE(shared_moved);
  EXPECT_EQ(Fnv1a(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(snapshot.data()),
                                      snapshot.size())),
            first);
  ctx.TryCancel();
  reader->Finish().IgnoreError();
}

// The server dies while holding this client's buffers (and this client
// holds the server's): everything of the connection is unmapped here.
TEST_F(SharedBufferLimitsTest, AServerKilledWhileHoldingBuffersLeavesNothingBehind) {
  const std::vector<std::string> shm_before = DevShm();
  const int fds_before = CountOpenFds();
  ServerProcess server;
  std::shared_ptr<Channel> channel = Connect(server);
  auto stub = SharedBufferService::NewStub(channel);
  std::vector<SharedBufferView> held;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*channel, 4 * kMiB);
    ASSERT_TRUE(w.ok());
    ClientContext ctx;
    BufferRequest req;
    SetSharedBuffer(req.mutable_buffer(), *w);
    BufferReply reply;
    ASSERT_TRUE(stub->Hoard(&ctx, req, &reply).ok());
    ClientContext ctx2;
    req.Clear();
    req.set_size(kMiB);
    ASSERT_TRUE(stub->Exchange(&ctx2, req, &reply).ok());
    absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx2, reply.buffer());
    ASSERT_TRUE(v.ok());
    held.push_back(std::move(*v));
  }
  EXPECT_GT(SegmentMappings().count, 0);
  EXPECT_GT(SegmentMappings(server.pid()).count, 0);
  server.Kill();
  // The client notices (its next call fails) and forgets the connection's
  // pool; the views it still holds keep only their own mappings.
  ClientContext ctx;
  BufferReply reply;
  EXPECT_FALSE(stub->Exchange(&ctx, BufferRequest(), &reply).ok());
  EXPECT_EQ(held[3].data().size(), kMiB);  // still readable
  held.clear();
  stub.reset();
  channel.reset();
  EXPECT_EQ(AwaitMappings(0, 0), 0);
  EXPECT_LE(AwaitFdCountAtMost(0, fds_before), fds_before);
  EXPECT_EQ(DevShm(), shm_before);
}

// A client process dies while holding the server's buffers (and the server
// holds its): the server's mappings and descriptors go back to where they
// were.
TEST_F(SharedBufferLimitsTest, AClientKilledWhileHoldingBuffersLeavesNothingInTheServer) {
  const std::vector<std::string> shm_before = DevShm();
  ServerProcess server;
  {  // a first connection, so that the server's baseline has its threads
    std::shared_ptr<Channel> channel = Connect(server);
    ClientContext ctx;
    BufferReply reply;
    ASSERT_TRUE(SharedBufferService::NewStub(channel)->ReleaseHoard(&ctx, {}, &reply).ok());
  }
  const int server_fds = CountOpenFds(server.pid());
  const int server_mappings = SegmentMappings(server.pid()).count;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the client: holds buffers both ways, then waits to be killed
    ::close(ready[0]);
    auto channel = CreateChannel("shm:" + server.socket_path());
    if (!channel.ok()) ::_exit(2);
    auto stub = SharedBufferService::NewStub(*channel);
    std::vector<SharedBufferView> held;
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(**channel, 2 * kMiB);
      if (!w.ok()) ::_exit(3);
      ClientContext ctx;
      BufferRequest req;
      SetSharedBuffer(req.mutable_buffer(), *w);
      req.set_size(2 * kMiB);
      BufferReply reply;
      if (!stub->Exchange(&ctx, req, &reply).ok()) ::_exit(4);
      absl::StatusOr<SharedBufferView> v = TakeSharedBuffer(&ctx, reply.buffer());
      if (!v.ok()) ::_exit(5);
      held.push_back(std::move(*v));
    }
    ClientContext ctx;
    BufferRequest req;
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(**channel, kMiB);
    if (!w.ok()) ::_exit(6);
    SetSharedBuffer(req.mutable_buffer(), *w);
    BufferReply reply;
    if (!stub->Hoard(&ctx, req, &reply).ok()) ::_exit(7);
    if (::write(ready[1], "r", 1) != 1) ::_exit(8);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  EXPECT_GT(SegmentMappings(server.pid()).count, server_mappings);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // The hoarded view keeps its own mapping until released.
  ClientContext ctx;
  BufferReply reply;
  std::shared_ptr<Channel> channel = Connect(server);
  ASSERT_TRUE(SharedBufferService::NewStub(channel)->ReleaseHoard(&ctx, {}, &reply).ok());
  EXPECT_EQ(reply.index(), 1u);
  channel.reset();
  EXPECT_EQ(AwaitMappings(server.pid(), server_mappings), server_mappings);
  EXPECT_LE(AwaitFdCountAtMost(server.pid(), server_fds), server_fds);
  EXPECT_EQ(DevShm(), shm_before);
}

// --- Negotiation: a peer without the feature is never sent a buffer. ---

TEST_F(SharedBufferLimitsTest, AServerWithoutSharedBuffersIsNeverSentOne) {
  ServerProcess plain({"--no_shared_buffers"});
  ServerProcess able;
  std::shared_ptr<Channel> to_plain = Connect(plain);
  std::shared_ptr<Channel> to_able = Connect(able);
  absl::StatusOr<SharedBufferWriter> refused = AllocateSharedBuffer(*to_plain, 100);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("does not take shared buffers"), std::string::npos);
  // A buffer of another connection sent to it: refused before sending.
  absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*to_able, 100);
  ASSERT_TRUE(w.ok());
  ClientContext ctx;
  BufferRequest req;
  SetSharedBuffer(req.mutable_buffer(), *w);
  BufferReply reply;
  absl::Status s = SharedBufferService::NewStub(to_plain)->Exchange(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  // The plain server still serves the same channel.
  ClientContext ctx2;
  req.Clear();
  req.set_data("copy");
  ASSERT_TRUE(SharedBufferService::NewStub(to_plain)->CopyExchange(&ctx2, req, &reply).ok());
  EXPECT_EQ(reply.data(), "copy");
}

TEST_F(SharedBufferLimitsTest, AClientWithoutSharedBuffersIsNeverSentOne) {
  ServerProcess server;
  ChannelOptions options;
  options.shared_buffers = false;
  std::shared_ptr<Channel> channel = Connect(server, options);
  ClientContext ctx;
  BufferRequest req;
  req.set_size(100);
  BufferReply reply;
  absl::Status s = SharedBufferService::NewStub(channel)->Exchange(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("does not take shared buffers"), std::string::npos) << s;
}

TEST_F(SharedBufferLimitsTest, BuffersOfAnotherConnectionAndReceivedOnesAreNotSent) {
  ServerProcess a;
  ServerProcess b;
  std::shared_ptr<Channel> to_a = Connect(a);
  std::shared_ptr<Channel> to_b = Connect(b);
  absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(*to_a, 100);
  ASSERT_TRUE(w.ok());
  ClientContext ctx;
  BufferRequest req;
  SetSharedBuffer(req.mutable_buffer(), *w);
  BufferReply reply;
  absl::Status s = SharedBufferService::NewStub(to_b)->Exchange(&ctx, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // A received buffer cannot be sent on.
  ClientContext ctx2;
  req.Clear();
  req.set_size(64);
  ASSERT_TRUE(SharedBufferService::NewStub(to_a)->Exchange(&ctx2, req, &reply).ok());
  ClientContext ctx3;
  *req.mutable_buffer() = reply.buffer();
  s = SharedBufferService::NewStub(to_a)->Exchange(&ctx3, req, &reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("received from a peer"), std::string::npos) << s;
}

// --- A peer that breaks the rules (raw unix socket, PROTOCOL.md §13). ---

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

class SharedBufferHostilePeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = ConnectRaw(server_.socket_path());
    ASSERT_GE(socket_, 0);
    wire::Hello hello;
    hello.set_protocol_version(1);
    hello.set_max_fds_per_message(253);
    hello.set_shared_buffers(true);
    std::string out;
    internal::AppendProtoFrame(internal::FrameType::kHello, 0, hello, hello.ByteSizeLong(), &out);
    ASSERT_TRUE(SendAll(socket_, out));
    std::string theirs = ReceiveFrame(socket_);
    ASSERT_GE(theirs.size(), 16u);
    wire::Hello server_hello;
    ASSERT_TRUE(server_hello.ParseFromString(theirs.substr(16)));
    ASSERT_TRUE(server_hello.shared_buffers());
  }
  void TearDown() override {
    if (socket_ >= 0) ::close(socket_);
  }

  // Announces segment `id` of `size` bytes with descriptor `fd`.
  void Announce(uint32_t id, uint64_t size, int fd) {
    std::string payload;
    internal::EncodeSegmentAnnouncement({id, size}, &payload);
    std::string frame;
    internal::AppendFrame(internal::FrameType::kSegment, 0, payload, &frame);
    frame[14] = 1;  // fd_count
    ASSERT_TRUE(SendWithFds(socket_, frame, {fd}));
  }

  // Calls Exchange with one reference; returns the status in the TRAILERS.
  absl::Status CallWith(const std::vector<internal::BufferReference>& refs,
                        bool truncate_table = false) {
    const uint32_t id = next_stream_ += 2;
    wire::CallStart start;
    start.set_method(Method("Exchange"));
    std::string out;
    internal::AppendProtoFrame(internal::FrameType::kCallStart, id, start, start.ByteSizeLong(),
                               &out);
    BufferRequest req;
    for (const internal::BufferReference& r : refs) req.add_buffers()->set_handle(r.key);
    std::string payload = req.SerializeAsString();
    internal::EncodeBufferTable(refs, &payload);
    if (truncate_table) payload.resize(payload.size() - 10);
    internal::AppendFrame(internal::FrameType::kMessage, id, payload, &out,
                          internal::kFlagSharedBuffers);
    internal::AppendFrame(internal::FrameType::kHalfClose, id, {}, &out);
    if (!SendAll(socket_, out)) return absl::UnavailableError("send");
    for (;;) {
      std::string frame = ReceiveFrame(socket_);
      if (frame.size() < 16) return absl::UnavailableError("the server closed the connection");
      if (frame[3] != static_cast<char>(internal::FrameType::kTrailers)) continue;
      wire::Trailers t;
      t.ParseFromString(frame.substr(16));
      return absl::Status(static_cast<absl::StatusCode>(t.code()), t.message());
    }
  }

  // A memfd of `size` bytes, sealed as the protocol requires if `seal`.
  static ScopedFd Memfd(uint64_t size, bool seal) {
    ScopedFd fd(::memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    if (seal) {
      EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    }
    return fd;
  }

  bool ServerClosed() {
    for (;;) {
      if (ReceiveFrame(socket_).empty()) return true;
    }
  }

  ServerProcess server_;
  int socket_ = -1;
  uint32_t next_stream_ = 1;
};

TEST_F(SharedBufferHostilePeerTest, BogusReferencesFailTheCallNotTheServer) {
  ScopedFd fd = Memfd(4096, true);
  Announce(1, 4096, fd.get());
  absl::Status s = CallWith({{1, 9, 0, 10}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("never announced"), std::string::npos) << s;
  s = CallWith({{1, 1, 4000, 200}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("outside segment"), std::string::npos) << s;
  s = CallWith({{1, 1, 16, ~uint64_t{0} - 8}});  // offset + length overflows
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = CallWith({{0, 1, 0, 1}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = CallWith({{1, 1, 0, 1}}, /*truncate_table=*/true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  // A good one on the same connection works, down to the last byte.
  ASSERT_EQ(::pwrite(fd.get(), "z", 1, 4095), 1);
  s = CallWith({{1, 1, 4095, 1}});
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(SharedBufferHostilePeerTest, SegmentsThatCouldShrinkAreNeverMapped) {
  // Unsealed: the sender could truncate it under the server's mapping (SIGBUS).
  ScopedFd unsealed = Memfd(1 << 20, false);
  Announce(1, 1 << 20, unsealed.get());
  absl::Status s = CallWith({{1, 1, 0, 1 << 20}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("not sealed"), std::string::npos) << s;
  ASSERT_EQ(::ftruncate(unsealed.get(), 0), 0);  // would fault a server that had mapped it
  // Not a memfd at all.
  ScopedFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  Announce(2, 4096, devnull.get());
  s = CallWith({{1, 2, 0, 1}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("not a memfd"), std::string::npos) << s;
  // A size that is not the memfd's.
  ScopedFd small = Memfd(4096, true);
  Announce(3, 1 << 20, small.get());
  s = CallWith({{1, 3, 8192, 1}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // The server is alive and well.
  ScopedFd good = Memfd(4096, true);
  Announce(4, 4096, good.get());
  EXPECT_TRUE(CallWith({{7, 4, 0, 4096}}).ok());
}

TEST_F(SharedBufferHostilePeerTest, ReleasingWhatItDoesNotHoldEndsTheConnection) {
  std::string payload;
  internal::EncodeU32List({77}, &payload);
  std::string frame;
  internal::AppendFrame(internal::FrameType::kBufferRelease, 0, payload, &frame);
  ASSERT_TRUE(SendAll(socket_, frame));
  EXPECT_TRUE(ServerClosed());
  // Other connections are served.
  auto channel = CreateChannel("unix:" + server_.socket_path());
  ASSERT_TRUE(channel.ok());
  ClientContext ctx;
  BufferReply reply;
  EXPECT_TRUE(SharedBufferService::NewStub(*channel)->ReleaseHoard(&ctx, {}, &reply).ok());
}

TEST_F(SharedBufferHostilePeerTest, ReleasingABufferTwiceEndsTheConnection) {
  // The server sends one buffer; this peer releases it twice.
  const uint32_t id = 1;
  wire::CallStart start;
  start.set_method(Method("Exchange"));
  std::string out;
  internal::AppendProtoFrame(internal::FrameType::kCallStart, id, start, start.ByteSizeLong(),
                             &out);
  BufferRequest req;
  req.set_size(100);
  internal::AppendFrame(internal::FrameType::kMessage, id, req.SerializeAsString(), &out);
  internal::AppendFrame(internal::FrameType::kHalfClose, id, {}, &out);
  ASSERT_TRUE(SendAll(socket_, out));
  uint32_t key = 0;
  for (int i = 0; i < 10 && key == 0; ++i) {
    std::string frame = ReceiveFrame(socket_);
    ASSERT_GE(frame.size(), 16u);
    if (frame[3] != static_cast<char>(internal::FrameType::kMessage)) continue;
    absl::string_view message;
    std::vector<internal::BufferReference> refs;
    ASSERT_TRUE(internal::DecodeBufferTable(absl::string_view(frame).substr(16), &message, &refs));
    ASSERT_EQ(refs.size(), 1u);
    key = refs[0].key;
  }
  std::string payload;
  internal::EncodeU32List({key}, &payload);
  std::string frame;
  internal::AppendFrame(internal::FrameType::kBufferRelease, 0, payload, &frame);
  ASSERT_TRUE(SendAll(socket_, frame));  // fine: it held one reference
  ASSERT_TRUE(SendAll(socket_, frame));  // refused
  EXPECT_TRUE(ServerClosed());
}

}  // namespace
}  // namespace ipcrpc::test
