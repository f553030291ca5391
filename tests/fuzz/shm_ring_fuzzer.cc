// libFuzzer target: the shared-memory ring's reader and writer
// (transports/shm/shm_ring.cc) while a hostile peer writes arbitrary bytes
// anywhere in the region: the ring data, head/tail, the sleeping words, the
// closed/attached flags, the magic (transports/shm/ring_layout.h).
//
// The fuzzer is the client: it maps the server's memfd itself and, driven by
// the input, alternates scribbles with the server's Read and Write (each
// with an expired deadline, so nothing sleeps). The server must read only
// bytes inside the ring, report DATA_LOSS for impossible counters, and never
// crash. Futex wake-up only ("shm+sem" trusts glibc's semaphore internals,
// documented in shm_ring.h).

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "transports/shm/ring_layout.h"
#include "transports/shm/shm_ring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipcrpc;
  constexpr uint64_t kRing = shm::kMinRingBytes;
  constexpr uint64_t kRegion = shm::RegionBytes(kRing);
  ShmOptions options;
  options.ring_bytes = kRing;
  options.spin = false;
  auto pending = PrepareShm(options);
  if (!pending.ok()) return 0;
  wire::TransportOffer offer;
  std::vector<int> offered;
  (*pending)->FillOffer(&offer, &offered);
  if (offered.size() != 1) return 0;
  void* mapped = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_SHARED, offered[0], 0);
  if (mapped == MAP_FAILED) return 0;
  auto* region = static_cast<uint8_t*>(mapped);
  auto* header = reinterpret_cast<shm::ShmHeader*>(region);
  header->side[shm::kClientSide].attached.store(1);
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    munmap(mapped, kRegion);
    return 0;
  }
  auto server = (*pending)->Complete(ScopedFd(sockets[1]), absl::Now() + absl::Seconds(1));
  if (!server.ok()) {
    close(sockets[0]);
    munmap(mapped, kRegion);
    return 0;
  }
  // Ops: 0 = write bytes at an offset, 1 = server Read, 2 = server Write,
  // 3 = store a value into one of the control words.
  struct Word {
    size_t offset;
    bool wide;  // 64-bit (head, tail, magic) or 32-bit
  };
  auto ring = [](int index, size_t field) {
    return offsetof(shm::ShmHeader, ring) + index * sizeof(shm::ShmRingControl) + field;
  };
  const size_t client = offsetof(shm::ShmHeader, side) + sizeof(shm::ShmSide) * shm::kClientSide;
  const Word words[] = {
      {ring(0, offsetof(shm::ShmRingControl, head)), true},
      {ring(0, offsetof(shm::ShmRingControl, reader_sleeping)), false},
      {ring(0, offsetof(shm::ShmRingControl, tail)), true},
      {ring(0, offsetof(shm::ShmRingControl, writer_sleeping)), false},
      {ring(1, offsetof(shm::ShmRingControl, head)), true},
      {ring(1, offsetof(shm::ShmRingControl, reader_sleeping)), false},
      {ring(1, offsetof(shm::ShmRingControl, tail)), true},
      {ring(1, offsetof(shm::ShmRingControl, writer_sleeping)), false},
      {client + offsetof(shm::ShmSide, closed), false},
      {client + offsetof(shm::ShmSide, cpu), false},
      {offsetof(shm::ShmHeader, magic), true},
  };
  char buffer[6000];
  size_t at = 0;
  while (at < size) {
    const uint8_t op = data[at++] % 4;
    if (op == 0 && at + 3 <= size) {
      size_t offset = (data[at] | (data[at + 1] << 8) | (size_t{data[at + 2]} << 16)) % kRegion;
      at += 3;
      size_t n = at < size ? data[at++] : 0;
      n = std::min({n, size - at, static_cast<size_t>(kRegion - offset)});
      std::memcpy(region + offset, data + at, n);  // racing the server's atomics is the point
      at += n;
    } else if (op == 1 && at < size) {
      size_t want = 1 + (size_t{data[at++]} * 23) % sizeof(buffer);
      (*server)->Read(absl::MakeSpan(buffer, want), absl::Now()).status().IgnoreError();
    } else if (op == 2 && at < size) {
      size_t n = (size_t{data[at++]} * 23) % sizeof(buffer);
      std::memset(buffer, 'w', n);
      (*server)->Write({absl::string_view(buffer, n)}, absl::Now()).IgnoreError();
    } else if (op == 3 && at + 9 <= size) {
      const Word& word = words[data[at++] % (sizeof(words) / sizeof(words[0]))];
      uint64_t value;
      std::memcpy(&value, data + at, 8);
      at += 8;
      // Small values (near the real counters) are the interesting ones.
      if (value >> 63) value = (value & 0xffff) | (value & 0x4000000000000000ull);
      if (word.wide) {
        __atomic_store_n(reinterpret_cast<uint64_t*>(region + word.offset), value,
                         __ATOMIC_RELEASE);
      } else {
        __atomic_store_n(reinterpret_cast<uint32_t*>(region + word.offset),
                         static_cast<uint32_t>(value), __ATOMIC_RELEASE);
      }
    } else {
      break;
    }
  }
  server->reset();
  close(sockets[0]);
  munmap(mapped, kRegion);
  return 0;
}
