// The consumer: subscribes to N frames and reads each in place.
// Usage: consumer TARGET FRAMES [FRAME_BYTES] (e.g. shm:/tmp/camera.sock 100)

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "examples/frame_producer/camera.ipcrpc.pb.h"
#include "runtime/ipcrpc.h"
#include "runtime/shared_buffer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: consumer TARGET FRAMES [FRAME_BYTES]\n");
    return 2;
  }
  absl::StatusOr<std::shared_ptr<ipcrpc::Channel>> channel = ipcrpc::CreateChannel(argv[1]);
  if (!channel.ok()) {
    std::fprintf(stderr, "consumer: %s\n", channel.status().ToString().c_str());
    return 1;
  }
  demo::Camera::Stub camera(*channel);
  ipcrpc::ClientContext ctx;
  demo::Subscribe request;
  request.set_frames(static_cast<uint32_t>(std::atoi(argv[2])));
  if (argc > 3) request.set_frame_bytes(std::strtoull(argv[3], nullptr, 10));
  auto frames = camera.Frames(&ctx, request);
  demo::VideoFrame frame;
  uint64_t received = 0, bytes = 0, bad = 0;
  while (frames->Read(&frame)) {
    absl::StatusOr<ipcrpc::SharedBufferView> pixels =
        ipcrpc::TakeSharedBuffer(&ctx, frame.pixels());
    if (!pixels.ok()) {
      std::fprintf(stderr, "consumer: %s\n", pixels.status().ToString().c_str());
      return 1;
    }
    // "Display": check the frame number the producer rendered into it.
    absl::Span<const uint8_t> data = pixels->data();
    uint64_t number = 0;
    std::memcpy(&number, data.data(), std::min<size_t>(sizeof(number), data.size()));
    if (number != frame.number() || data.back() != static_cast<uint8_t>(frame.number() & 0xff)) {
      ++bad;
    }
    ++received;
    bytes += data.size();
  }  // each view dropped here: the producer may reuse that frame's memory
  absl::Status status = frames->Finish();
  std::printf("%llu frames, %llu bytes, %llu bad: %s\n",
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(bad), status.ToString().c_str());
  return status.ok() && bad == 0 ? 0 : 1;
}
