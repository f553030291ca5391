#include "runtime/internal/frame.h"

#include "runtime/internal/framed_connection.h"

#include <deque>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"

namespace ipcrpc::internal {
namespace {

// Serves scripted reads: each entry is either bytes or an error status.
class ScriptedTransport final : public Transport {
 public:
  void AddBytes(std::string bytes, size_t chunk = SIZE_MAX) {
    for (size_t i = 0; i < bytes.size(); i += chunk) {
      script_.push_back({bytes.substr(i, chunk), absl::OkStatus()});
    }
  }
  void AddError(absl::Status status) { script_.push_back({"", status}); }

  absl::Status Write(absl::Span<const absl::string_view>, absl::Time) override {
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time) override {
    if (script_.empty()) return absl::UnavailableError("peer closed the connection");
    Step& step = script_.front();
    if (!step.status.ok()) {
      absl::Status s = step.status;
      script_.pop_front();
      return s;
    }
    size_t n = std::min(buffer.size(), step.bytes.size());
    std::copy_n(step.bytes.data(), n, buffer.data());
    step.bytes.erase(0, n);
    if (step.bytes.empty()) script_.pop_front();
    return n;
  }
  void Interrupt() override {}
  void Shutdown() override {}
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "scripted"; }

 private:
  struct Step {
    std::string bytes;
    absl::Status status;
  };
  std::deque<Step> script_;
};

TEST(FrameHeaderTest, BytesAreExactlyAsDocumented) {
  // docs/PROTOCOL.md, "Frame header": a CREDIT frame on stream 0x01020304
  // with a 4-byte payload and flags 0x0001, fd_count 2.
  FrameHeader h;
  h.type = FrameType::kCredit;
  h.stream_id = 0x01020304;
  h.length = 4;
  h.flags = 0x0001;
  h.fd_count = 2;
  char bytes[kFrameHeaderSize];
  EncodeFrameHeader(h, bytes);
  EXPECT_EQ(absl::BytesToHexString(absl::string_view(bytes, kFrameHeaderSize)),
            "4952010704030201040000000100" "0200");
  auto back = DecodeFrameHeader(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->type, FrameType::kCredit);
  EXPECT_EQ(back->stream_id, 0x01020304u);
  EXPECT_EQ(back->length, 4u);
  EXPECT_EQ(back->flags, 1);
  EXPECT_EQ(back->fd_count, 2);
}

TEST(FrameHeaderTest, BadMagicAndVersionAreDataLoss) {
  std::string bytes(kFrameHeaderSize, '\0');
  bytes[0] = 'G';
  bytes[1] = 'E';
  auto s = DecodeFrameHeader(bytes.data());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("magic"), std::string::npos);
  bytes[0] = 0x49;
  bytes[1] = 0x52;
  bytes[2] = 9;
  s = DecodeFrameHeader(bytes.data());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("version 9"), std::string::npos);
}

TEST(FrameReaderTest, ReadsFramesSplitAtEveryByte) {
  std::string stream;
  AppendFrame(FrameType::kHalfClose, 7, {}, &stream);
  wire::Trailers t;
  t.set_code(5);
  t.set_message("not found");
  AppendProtoFrame(FrameType::kTrailers, 7, t, t.ByteSizeLong(), &stream);
  ScriptedTransport transport;
  transport.AddBytes(stream, 1);
  FrameReader reader(transport, 1024);
  Frame f;
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.type, FrameType::kHalfClose);
  EXPECT_EQ(f.header.stream_id, 7u);
  EXPECT_TRUE(f.payload.empty());
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.type, FrameType::kTrailers);
  wire::Trailers back;
  ASSERT_TRUE(back.ParseFromString(f.payload));
  EXPECT_EQ(back.message(), "not found");
  EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(),
            absl::StatusCode::kUnavailable);
}

TEST(FrameReaderTest, InterruptedReadResumesMidFrame) {
  std::string stream;
  std::string payload(200000, 'x');  // larger than the reader's buffer
  AppendFrame(FrameType::kMessage, 3, payload, &stream);
  ScriptedTransport transport;
  transport.AddBytes(stream.substr(0, 10));
  transport.AddError(absl::AbortedError("interrupted"));
  transport.AddBytes(stream.substr(10, 100000));
  transport.AddError(absl::DeadlineExceededError("deadline"));
  transport.AddBytes(stream.substr(100010));
  FrameReader reader(transport, 1 << 20);
  Frame f;
  EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.payload, payload);
}

TEST(FrameReaderTest, OversizedPayloadIsDiscardedAndTheStreamContinues) {
  std::string stream;
  AppendFrame(FrameType::kMessage, 1, std::string(5000, 'b'), &stream);
  AppendFrame(FrameType::kMessage, 1, "small", &stream);
  ScriptedTransport transport;
  transport.AddBytes(stream, 777);
  FrameReader reader(transport, 1000);
  Frame f;
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(f.oversized);
  EXPECT_EQ(f.header.length, 5000u);
  EXPECT_TRUE(f.payload.empty());
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_FALSE(f.oversized);
  EXPECT_EQ(f.payload, "small");
}

TEST(FrameReaderTest, RecycledPayloadMemoryIsReusedAndFullyOverwritten) {
  std::string stream;
  AppendFrame(FrameType::kMessage, 1, std::string(100000, 'a'), &stream);
  AppendFrame(FrameType::kMessage, 1, std::string(80000, 'b'), &stream);
  ScriptedTransport transport;
  transport.AddBytes(stream, 4096);
  FrameReader reader(transport, 1 << 20);
  Frame first;
  ASSERT_TRUE(reader.ReadFrame(&first, absl::InfiniteFuture()).ok());
  const char* memory = first.payload.data();
  reader.Recycle(std::move(first.payload));
  Frame second;
  ASSERT_TRUE(reader.ReadFrame(&second, absl::InfiniteFuture()).ok());
  EXPECT_EQ(second.payload.data(), memory);  // the same memory, reused
  EXPECT_EQ(second.payload, std::string(80000, 'b'));  // nothing of the old payload left
}

TEST(FrameReaderTest, GarbageIsDataLoss) {
  ScriptedTransport transport;
  transport.AddBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  FrameReader reader(transport, 1000);
  Frame f;
  EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
}

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
    FramedConnection framed(std::move(owned), 1 << 20);
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
  FramedConnection framed(std::move(owned), 1 << 20);
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
  FramedConnection framed(std::move(owned), 1 << 20);
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
  FramedConnection framed(std::move(owned), 1 << 20);
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

}  // namespace
}  // namespace ipcrpc::internal
