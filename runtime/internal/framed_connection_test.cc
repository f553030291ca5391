// Tests for FramedConnection: WriteMessage puts the same bytes on the wire
// whether a message is written whole or in chunks, and a failed or
// inconsistent write ends the connection.

#include "runtime/internal/framed_connection.h"

#include <atomic>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"
#include "wire/frame.h"

namespace ipcrpc::internal {
namespace {

// Records every write (the bytes, and how many calls); can fail a write.
class RecordingTransport final : public Transport {
 public:
  absl::Status Write(absl::Span<const absl::string_view> chunks, absl::Time) override {
    if (++writes == fail_write) return absl::UnavailableError("recording: write failed");
    for (absl::string_view c : chunks) bytes.append(c.data(), c.size());
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Read(absl::Span<char>, absl::Time) override {
    return absl::UnavailableError("recording: not readable");
  }
  void Interrupt() override {}
  void Shutdown() override { shut_down = true; }
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "recording"; }

  std::string bytes;
  int writes = 0;
  int fail_write = 0;  // 1-based index of the write to fail; 0: none
  bool shut_down = false;
};

// What WriteMessage must put on the wire: the frames before, one MESSAGE
// frame, the frames after, byte for byte.
std::string ExpectedBytes(absl::string_view before, uint32_t stream_id,
                          const google::protobuf::MessageLite& message, absl::string_view after) {
  std::string out(before);
  AppendProtoFrame(FrameType::kMessage, stream_id, message, message.ByteSizeLong(), &out);
  out.append(after.data(), after.size());
  return out;
}

TEST(FramedConnectionTest, WriteMessageBytesDoNotDependOnTheMessageSize) {
  for (size_t size : {size_t{100}, kStreamedMessageBytes - 20, kStreamedMessageBytes,
                      3 * kStreamedMessageBytes + 7}) {
    auto owned = std::make_unique<RecordingTransport>();
    RecordingTransport& transport = *owned;
    FramedConnection framed(std::move(owned), 1 << 20, 1 << 20);
    wire::Hello message;
    message.set_agent(std::string(size, 'x'));
    message.set_protocol_version(1);
    std::string before, after;
    AppendFrame(FrameType::kHeaders, 7, "h", &before);
    AppendFrame(FrameType::kTrailers, 7, {}, &after);
    const std::string expected = ExpectedBytes(before, 7, message, after);
    std::string frames = before;
    ASSERT_TRUE(framed
                    .WriteMessage(
                        &frames, 7, &message, message.ByteSizeLong(),
                        [&](std::string* out) { out->append(after); }, absl::InfiniteFuture())
                    .ok());
    EXPECT_TRUE(transport.bytes == expected) << "message of " << size << " bytes";
    // Small messages go out in one write; large ones in chunks.
    EXPECT_EQ(transport.writes > 1, message.ByteSizeLong() >= kStreamedMessageBytes) << size;
    EXPECT_FALSE(transport.shut_down);
  }
}

TEST(FramedConnectionTest, WithoutAMessageTheFramesGoOutInOneWrite) {
  auto owned = std::make_unique<RecordingTransport>();
  RecordingTransport& transport = *owned;
  FramedConnection framed(std::move(owned), 1 << 20, 1 << 20);
  std::string frames, expected;
  AppendFrame(FrameType::kHeaders, 3, "h", &frames);
  expected = frames;
  AppendFrame(FrameType::kTrailers, 3, {}, &expected);
  ASSERT_TRUE(framed
                  .WriteMessage(
                      &frames, 3, nullptr, 0,
                      [](std::string* out) { AppendFrame(FrameType::kTrailers, 3, {}, out); },
                      absl::InfiniteFuture())
                  .ok());
  EXPECT_EQ(transport.bytes, expected);
  EXPECT_EQ(transport.writes, 1);
}

TEST(FramedConnectionTest, AMessageThatChangedWhileBeingSentBreaksTheConnection) {
  auto owned = std::make_unique<RecordingTransport>();
  RecordingTransport& transport = *owned;
  FramedConnection framed(std::move(owned), 1 << 20, 1 << 20);
  wire::Hello message;
  message.set_agent(std::string(2 * kStreamedMessageBytes, 'x'));
  std::string frames;
  // The header promises more bytes than the message serializes to.
  absl::Status status = framed.WriteMessage(&frames, 1, &message, message.ByteSizeLong() + 5,
                                            FramedConnection::NoFramesAfter,
                                            absl::InfiniteFuture());
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_NE(status.message().find("changed while it was being sent"), std::string::npos) << status;
  EXPECT_TRUE(transport.shut_down);
}

TEST(FramedConnectionTest, AFailedChunkWriteEndsTheMessageAndTheConnection) {
  auto owned = std::make_unique<RecordingTransport>();
  RecordingTransport& transport = *owned;
  transport.fail_write = 2;
  FramedConnection framed(std::move(owned), 1 << 20, 1 << 20);
  wire::Hello message;
  message.set_agent(std::string(4 * kStreamedMessageBytes, 'x'));
  std::string frames;
  absl::Status status = framed.WriteMessage(&frames, 1, &message, message.ByteSizeLong(),
                                            FramedConnection::NoFramesAfter,
                                            absl::InfiniteFuture());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(transport.writes, 2);  // nothing written after the failure
  EXPECT_TRUE(transport.shut_down);
}

// A write that blocks (a peer that stopped reading) until released.
class BlockingTransport final : public Transport {
 public:
  absl::Status Write(absl::Span<const absl::string_view>, absl::Time) override {
    entered = true;
    while (!released) absl::SleepFor(absl::Milliseconds(1));
    ++writes;
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Read(absl::Span<char>, absl::Time) override {
    return absl::UnavailableError("blocking: not readable");
  }
  void Interrupt() override {}
  void Shutdown() override { shut_down = true; }
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "blocking"; }

  std::atomic<bool> entered{false};
  std::atomic<bool> released{false};
  std::atomic<int> writes{0};
  std::atomic<bool> shut_down{false};
};

// Issue 9 item 13: GOAWAY at shutdown must not wait forever behind a write
// blocked on a peer that stopped reading.
TEST(FramedConnectionTest, WriteWithinGivesUpWaitingForABlockedWrite) {
  auto owned = std::make_unique<BlockingTransport>();
  BlockingTransport& transport = *owned;
  FramedConnection framed(std::move(owned), 1 << 20, 1 << 20);
  std::thread stuck([&] { framed.Write("stuck", absl::InfiniteFuture()).IgnoreError(); });
  while (!transport.entered) absl::SleepFor(absl::Milliseconds(1));
  absl::Status status = framed.WriteWithin("goaway", absl::Now() + absl::Milliseconds(20));
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_FALSE(transport.shut_down);  // nothing was written: the stream is intact
  transport.released = true;
  stuck.join();
  EXPECT_TRUE(framed.WriteWithin("goaway", absl::Now()).ok());  // a free turn is taken at once
  EXPECT_EQ(transport.writes, 2);
}

}  // namespace
}  // namespace ipcrpc::internal
