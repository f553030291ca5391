// Tests for the frame codec: header bytes exactly as docs/PROTOCOL.md
// says, and a FrameReader that resumes anywhere, discards oversized payloads
// and refuses garbage.

#include "wire/frame.h"

#include <unistd.h>

#include <deque>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/transport.pb.h"
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
  // Bytes read in one piece, with a batch of `fds` descriptors (copies of
  // stdin's) arriving with them.
  void AddBytesWithFds(std::string bytes, int fds, bool truncated = false) {
    Step step{std::move(bytes), absl::OkStatus()};
    step.fds = fds;
    step.truncated = truncated;
    script_.push_back(std::move(step));
  }

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
  absl::StatusOr<size_t> ReadWithFdBatches(absl::Span<char> buffer, std::vector<FdBatch>* batches,
                                           absl::Time deadline) override {
    if (!script_.empty() && (script_.front().fds > 0 || script_.front().truncated)) {
      FdBatch batch;
      for (int i = 0; i < script_.front().fds; ++i) batch.fds.emplace_back(::dup(0));
      batch.truncated = script_.front().truncated;
      batches->push_back(std::move(batch));
      script_.front().fds = 0;
      script_.front().truncated = false;
    }
    return Read(buffer, deadline);
  }
  void Interrupt() override {}
  void Shutdown() override {}
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "scripted"; }

 private:
  struct Step {
    std::string bytes;
    absl::Status status;
    int fds = 0;
    bool truncated = false;
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

TEST(FrameHeaderTest, ProtoFramesCarryTheirFdCount) {
  wire::TransportAck ack;
  ack.set_ok(true);
  std::string out;
  AppendProtoFrame(FrameType::kTransportAck, 0, ack, ack.ByteSizeLong(), &out, 3);
  ASSERT_EQ(out.size(), kFrameHeaderSize + ack.ByteSizeLong());
  auto header = DecodeFrameHeader(out.data());
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->type, FrameType::kTransportAck);
  EXPECT_EQ(header->fd_count, 3);
  EXPECT_EQ(header->length, ack.ByteSizeLong());
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

// What a reader waiting in the event loop does: after each read that could
// not finish a frame, and between frames, it lets its buffer go. Nothing of
// the stream is lost, whether the buffer held nothing, or part of a header
// (kept), or a payload being assembled (which lives in the frame, not the
// buffer).
TEST(FrameReaderTest, ReleasingTheBufferWhenEmptyLosesNothing) {
  std::string stream;
  AppendFrame(FrameType::kMessage, 1, std::string(3000, 'a'), &stream);
  AppendFrame(FrameType::kHalfClose, 1, {}, &stream);
  AppendFrame(FrameType::kMessage, 3, std::string(70000, 'b'), &stream);
  ScriptedTransport transport;
  // Pieces that end mid-header, mid-payload and between frames.
  for (size_t at = 0; at < stream.size();) {
    const size_t n = std::min<size_t>(at % 7 == 0 ? 5 : 4099, stream.size() - at);
    transport.AddBytes(stream.substr(at, n));
    transport.AddError(absl::DeadlineExceededError("would block"));
    at += n;
  }
  FrameReader reader(transport, 1 << 20);
  struct Got {
    FrameType type;
    uint32_t stream_id;
    std::string payload;
  };
  std::vector<Got> frames;
  Frame f;
  for (int reads = 0; frames.size() < 3 && reads < 1000; ++reads) {
    reader.ReleaseBufferIfEmpty();
    absl::Status s = reader.ReadFrame(&f, absl::InfinitePast());
    if (s.ok()) {
      frames.push_back({f.header.type, f.header.stream_id, f.payload});
      if (reader.Idle()) reader.ReleaseBufferIfEmpty();
    } else {
      ASSERT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    }
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].payload, std::string(3000, 'a'));
  EXPECT_EQ(frames[1].type, FrameType::kHalfClose);
  EXPECT_EQ(frames[2].stream_id, 3u);
  EXPECT_EQ(frames[2].payload, std::string(70000, 'b'));
  EXPECT_TRUE(reader.Idle());
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

// A large payload grows with its bytes (issue 9 item 5); however they are
// split, the frame that comes out is byte-for-byte the one that went in.
TEST(FrameReaderTest, LargePayloadArrivingInPiecesIsReassembledExactly) {
  std::string payload(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + i / 7);
  for (size_t chunk : {size_t{1000}, size_t{65536}, size_t{200000}, SIZE_MAX}) {
    std::string stream;
    AppendFrame(FrameType::kMessage, 1, payload, &stream);
    AppendFrame(FrameType::kPing, 0, "12345678", &stream);
    ScriptedTransport transport;
    transport.AddBytes(stream, chunk);
    FrameReader reader(transport, 4 << 20);
    Frame frame;
    ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());
    EXPECT_TRUE(frame.payload == payload) << "chunk " << chunk;
    ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());
    EXPECT_EQ(frame.payload, "12345678");
  }
}

// A header alone commits no memory for the payload it declares: reading a
// 4 MiB header and 10 bytes, then timing out, holds 16 KiB for the payload.
TEST(FrameReaderTest, DeclaredLengthIsNotAllocatedBeforeTheBytesArrive) {
  std::string stream;
  FrameHeader h;
  h.type = FrameType::kMessage;
  h.stream_id = 1;
  h.length = 4 << 20;
  stream.resize(kFrameHeaderSize);
  EncodeFrameHeader(h, stream.data());
  stream += "0123456789";
  ScriptedTransport transport;
  transport.AddBytes(stream);
  transport.AddError(absl::DeadlineExceededError("no more bytes yet"));
  transport.AddBytes(std::string((4 << 20) - 10, 'z'));
  FrameReader reader(transport, 4 << 20);
  Frame frame;
  EXPECT_TRUE(absl::IsDeadlineExceeded(reader.ReadFrame(&frame, absl::InfiniteFuture())));
  EXPECT_LE(reader.BufferedPayloadCapacityForTest(), size_t{32} << 10);
  ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());  // resumes
  EXPECT_EQ(frame.payload.size(), size_t{4} << 20);
  EXPECT_EQ(frame.payload.substr(0, 12), "0123456789zz");
}

// A recycled buffer longer than the next payload must not be read into past
// that payload's end (the bytes of the following frame would be lost).
// Found by frame_reader_fuzzer's oracle.
TEST(FrameReaderTest, RecycledBufferIsNotFilledPastTheFrame) {
  std::string stream;
  AppendFrame(FrameType::kMessage, 1, std::string(200000, 'a'), &stream);
  AppendFrame(FrameType::kMessage, 1, std::string(120000, 'b'), &stream);
  AppendFrame(FrameType::kPing, 0, "12345678", &stream);
  ScriptedTransport transport;
  transport.AddBytes(stream);  // one script step: a read returns all it asks for
  FrameReader reader(transport, 1 << 20);
  Frame frame;
  ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());
  reader.Recycle(std::move(frame.payload));
  ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(frame.payload == std::string(120000, 'b'));
  ASSERT_TRUE(reader.ReadFrame(&frame, absl::InfiniteFuture()).ok());
  EXPECT_EQ(frame.header.type, FrameType::kPing);
  EXPECT_EQ(frame.payload, "12345678");
}

TEST(FrameReaderTest, GarbageIsDataLoss) {
  ScriptedTransport transport;
  transport.AddBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  FrameReader reader(transport, 1000);
  Frame f;
  EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ipcrpc::internal

namespace ipcrpc::internal {
namespace {

std::string MessageWithFds(uint32_t stream, uint8_t fds, absl::string_view payload = "pp") {
  std::string out;
  AppendFrame(FrameType::kMessage, stream, payload, &out);
  out[14] = static_cast<char>(fds);
  return out;
}

// NextFrameBuffered: true exactly when the next ReadFrame needs no transport
// read (the server's core starts a streaming handler on the reading thread
// only when the frames that came with its CALL_START are all applied).
TEST(FrameReaderTest, NextFrameBufferedOnlyWhenAWholeFrameIsBuffered) {
  std::string first, second;
  AppendFrame(FrameType::kCallStart, 1, "start", &first);
  AppendFrame(FrameType::kMessage, 1, "request", &second);
  std::string half_close;
  AppendFrame(FrameType::kHalfClose, 1, {}, &half_close);
  ScriptedTransport transport;
  // One read: CALL_START, the MESSAGE, and 5 bytes of the HALF_CLOSE header.
  transport.AddBytes(first + second + half_close.substr(0, 5));
  transport.AddBytes(half_close.substr(5));
  FrameReader reader(transport, 1024);
  EXPECT_FALSE(reader.NextFrameBuffered()) << "nothing read yet";
  Frame f;
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.type, FrameType::kCallStart);
  EXPECT_TRUE(reader.NextFrameBuffered()) << "the MESSAGE came in the same read";
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.payload, "request");
  EXPECT_FALSE(reader.NextFrameBuffered()) << "only part of the HALF_CLOSE header is here";
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.type, FrameType::kHalfClose);
  EXPECT_FALSE(reader.NextFrameBuffered());

  // A whole header whose payload is not all here yet.
  std::string big;
  AppendFrame(FrameType::kMessage, 3, std::string(100, 'x'), &big);
  ScriptedTransport partial;
  partial.AddBytes(first + big.substr(0, 50));
  partial.AddBytes(big.substr(50));
  FrameReader reader2(partial, 1024);
  ASSERT_TRUE(reader2.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_FALSE(reader2.NextFrameBuffered()) << "payload incomplete";
  ASSERT_TRUE(reader2.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.payload, std::string(100, 'x'));

  // A frame declaring descriptors may still wait for them: not buffered.
  ScriptedTransport with_fds;
  with_fds.AddBytes(first + MessageWithFds(1, 1));
  FrameReader reader3(with_fds, 1024);
  ASSERT_TRUE(reader3.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_FALSE(reader3.NextFrameBuffered());

  // A corrupt header fails at once, without a read: "buffered".
  ScriptedTransport garbage;
  garbage.AddBytes(first + std::string(16, '\xff'));
  FrameReader reader4(garbage, 1024);
  ASSERT_TRUE(reader4.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(reader4.NextFrameBuffered());
  EXPECT_EQ(reader4.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
}

TEST(FrameReaderFdTest, EachMessageGetsTheBatchThatCameWithItsFirstByte) {
  ScriptedTransport t;
  std::string ping;
  AppendFrame(FrameType::kPing, 0, "12345678", &ping);
  t.AddBytes(ping);
  t.AddBytesWithFds(MessageWithFds(1, 2), 2);
  // A batch may come early: the frame before it and its own first bytes in
  // one read (a stream recvmsg joins them).
  t.AddBytesWithFds(ping + MessageWithFds(3, 1).substr(0, 5), 1);
  t.AddBytes(MessageWithFds(3, 1).substr(5));
  FrameReader reader(t, 1 << 20);
  reader.set_max_fds_per_frame(253);
  Frame f;
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(f.fds.empty());
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.stream_id, 1u);
  EXPECT_EQ(f.fds.size(), 2u);
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.type, FrameType::kPing);
  EXPECT_TRUE(f.fds.empty());  // the last frame's were closed
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_EQ(f.header.stream_id, 3u);
  EXPECT_EQ(f.fds.size(), 1u);
  EXPECT_EQ(reader.undeclared_fds_closed(), 0u);
}

TEST(FrameReaderFdTest, ATruncatedBatchLosesThatMessageOnly) {
  ScriptedTransport t;
  t.AddBytesWithFds(MessageWithFds(1, 3), 1, /*truncated=*/true);
  t.AddBytesWithFds(MessageWithFds(3, 1), 1);
  FrameReader reader(t, 1 << 20);
  reader.set_max_fds_per_frame(253);
  Frame f;
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(f.fds_lost);
  EXPECT_TRUE(f.fds.empty());
  EXPECT_EQ(f.payload, "pp");  // the bytes are intact
  ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
  EXPECT_FALSE(f.fds_lost);
  EXPECT_EQ(f.fds.size(), 1u);
}

TEST(FrameReaderFdTest, ViolationsAreDataLossAndUndeclaredOnesAreCounted) {
  {
    ScriptedTransport t;  // descriptors with a frame that declares none
    std::string ping;
    AppendFrame(FrameType::kPing, 0, "12345678", &ping);
    t.AddBytesWithFds(ping, 4);
    t.AddBytes(ping);
    FrameReader reader(t, 1 << 20);
    reader.set_max_fds_per_frame(253);
    Frame f;
    ASSERT_TRUE(reader.ReadFrame(&f, absl::InfiniteFuture()).ok());
    EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(reader.undeclared_fds_closed(), 4u);
  }
  {
    ScriptedTransport t;  // declared, none came
    t.AddBytes(MessageWithFds(1, 2));
    FrameReader reader(t, 1 << 20);
    reader.set_max_fds_per_frame(253);
    Frame f;
    EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
  }
  {
    ScriptedTransport t;  // more than this side announced
    t.AddBytesWithFds(MessageWithFds(1, 2), 2);
    FrameReader reader(t, 1 << 20);
    reader.set_max_fds_per_frame(1);
    Frame f;
    EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
  }
  {
    ScriptedTransport t;  // a count that differs
    t.AddBytesWithFds(MessageWithFds(1, 2), 3);
    FrameReader reader(t, 1 << 20);
    reader.set_max_fds_per_frame(253);
    Frame f;
    EXPECT_EQ(reader.ReadFrame(&f, absl::InfiniteFuture()).code(), absl::StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace ipcrpc::internal
