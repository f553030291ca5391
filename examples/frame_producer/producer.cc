// The producer: renders each frame straight into shared memory and sends a
// reference to it. Usage: producer ADDRESS (e.g. unix:/tmp/camera.sock);
// serves until SIGTERM or SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

#include "examples/frame_producer/camera.ipcrpc.pb.h"
#include "runtime/ipcrpc.h"
#include "runtime/shared_buffer.h"

namespace {

constexpr uint64_t kDefaultFrameBytes = uint64_t{64} << 20;

// Stands in for real rendering: every byte of frame n is n's low byte,
// except the first 8, which hold n.
void Render(uint64_t n, absl::Span<uint8_t> pixels) {
  std::memset(pixels.data(), static_cast<int>(n & 0xff), pixels.size());
  std::memcpy(pixels.data(), &n, std::min<size_t>(sizeof(n), pixels.size()));
}

class CameraImpl final : public demo::Camera::Service {
  absl::Status Frames(ipcrpc::ServerContext* ctx, const demo::Subscribe* req,
                      ipcrpc::ServerWriter<demo::VideoFrame>* out) override {
    const uint64_t bytes = req->frame_bytes() > 0 ? req->frame_bytes() : kDefaultFrameBytes;
    for (uint64_t n = 0; n < req->frames(); ++n) {
      absl::StatusOr<ipcrpc::SharedBufferWriter> pixels = ipcrpc::AllocateSharedBuffer(ctx, bytes);
      if (!pixels.ok()) return pixels.status();  // RESOURCE_EXHAUSTED: the consumer holds too many
      Render(n, pixels->data());
      demo::VideoFrame frame;
      frame.set_number(n);
      ipcrpc::SetSharedBuffer(frame.mutable_pixels(), *pixels);
      if (!out->Write(frame)) break;  // a few dozen bytes on the wire
    }  // each writer dropped after its Write: the consumer's reference keeps the frame
    return absl::OkStatus();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: producer ADDRESS\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts
  CameraImpl camera;
  ipcrpc::ServerBuilder builder;
  builder.AddListeningAddress(argv[1]).RegisterService(&camera);
  absl::StatusOr<std::unique_ptr<ipcrpc::Server>> server = builder.BuildAndStart();
  if (!server.ok()) {
    std::fprintf(stderr, "producer: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  (*server)->Shutdown();
  return 0;
}
