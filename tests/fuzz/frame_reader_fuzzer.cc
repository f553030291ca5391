// libFuzzer target: the frame decoder and FrameReader (wire/frame.h).
//
// The input is a peer's byte stream. The first byte picks how the transport
// hands it over (chunk sizes, interleaved DEADLINE_EXCEEDED / ABORTED
// results, as a resumed read sees them); the reader must return every frame
// exactly, discard oversized payloads, and fail cleanly on garbage, never
// read out of bounds or hold memory beyond the bytes that arrived.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "wire/frame.h"

namespace ipcrpc::internal {
namespace {

class FuzzTransport final : public Transport {
 public:
  FuzzTransport(const uint8_t* data, size_t size, uint8_t mode)
      : data_(data), size_(size), mode_(mode) {}
  absl::Status Write(absl::Span<const absl::string_view>, absl::Time) override {
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time) override {
    ++calls_;
    if ((mode_ & 0x10) && calls_ % 3 == 0) return absl::DeadlineExceededError("fuzz: no bytes yet");
    if ((mode_ & 0x20) && calls_ % 5 == 0) return absl::AbortedError("fuzz: interrupted");
    if (at_ == size_) return absl::UnavailableError("fuzz: peer closed");
    size_t chunk = (mode_ & 0x0f) == 0 ? size_ : (size_t{1} << (mode_ & 0x0f));
    size_t n = std::min({buffer.size(), size_ - at_, chunk});
    std::copy_n(data_ + at_, n, buffer.data());
    at_ += n;
    return n;
  }
  void Interrupt() override {}
  void Shutdown() override {}
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "fuzz"; }

 private:
  const uint8_t* data_;
  size_t size_;
  uint8_t mode_;
  size_t at_ = 0;
  int calls_ = 0;
};

}  // namespace
}  // namespace ipcrpc::internal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipcrpc::internal;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  if (size >= kFrameHeaderSize) {
    auto header = DecodeFrameHeader(reinterpret_cast<const char*>(data));
    if (header.ok()) {  // encoding what was decoded gives the same bytes back
      char again[kFrameHeaderSize];
      EncodeFrameHeader(*header, again);
      for (size_t i = 0; i < kFrameHeaderSize - 1; ++i) {
        if (static_cast<uint8_t>(again[i]) != data[i]) __builtin_trap();
      }
    }
  }
  FuzzTransport transport(data, size, mode);
  // Small limits so that both the buffered and the oversized paths run.
  const size_t max_message = (mode & 0x40) ? 300000 : 1000;
  const size_t max_control = 512;
  FrameReader reader(transport, max_message, max_control);
  // The oracle: the frames of the whole input, decoded directly. The reader
  // must return exactly these, whatever the transport did.
  size_t at = 0;
  Frame frame;
  for (int i = 0; i < 100000; ++i) {
    absl::Status status = reader.ReadFrame(&frame, absl::InfiniteFuture());
    if (absl::IsDeadlineExceeded(status) || absl::IsAborted(status)) continue;
    // A frame that declares descriptors is a violation here (this transport
    // sends none): the reader must fail on it, not return it.
    const bool whole_frame_left =
        size - at >= kFrameHeaderSize &&
        DecodeFrameHeader(reinterpret_cast<const char*>(data + at)).ok() &&
        DecodeFrameHeader(reinterpret_cast<const char*>(data + at))->fd_count == 0 &&
        size - at - kFrameHeaderSize >=
            DecodeFrameHeader(reinterpret_cast<const char*>(data + at))->length;
    if (!status.ok()) {
      if (whole_frame_left) __builtin_trap();  // a complete, valid frame was not returned
      break;
    }
    if (!whole_frame_left) __builtin_trap();  // a frame the input does not hold
    const FrameHeader expected = *DecodeFrameHeader(reinterpret_cast<const char*>(data + at));
    const size_t limit = expected.type == FrameType::kMessage ? max_message : max_control;
    if (frame.header.type != expected.type || frame.header.stream_id != expected.stream_id ||
        frame.header.length != expected.length || frame.header.flags != expected.flags ||
        frame.oversized != (expected.length > limit)) {
      __builtin_trap();
    }
    if (frame.oversized ? !frame.payload.empty()
                        : frame.payload != std::string(reinterpret_cast<const char*>(data + at +
                                                                                     kFrameHeaderSize),
                                                       expected.length)) {
      __builtin_trap();
    }
    at += kFrameHeaderSize + expected.length;
    uint32_t credit;
    if (frame.header.type == FrameType::kCredit) ParseCreditPayload(frame.payload, &credit);
    if (mode & 0x80) reader.Recycle(std::move(frame.payload));
  }
  return 0;
}
