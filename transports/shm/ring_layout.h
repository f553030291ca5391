// ipcrpc shm transport: the layout of the shared-memory region.
//
// One memfd holds a 4096-byte header and two byte rings, one per direction:
//
//   offset 0                 ShmHeader (4096 bytes, below)
//   offset 4096              ring 0 data: client -> server (ring_bytes)
//   offset 4096 + ring_bytes ring 1 data: server -> client (ring_bytes)
//
// Side 0 is the server (it created the region), side 1 the client. Every
// field below has a fixed offset and size (static_asserted) because two
// processes, possibly built separately, share it; docs/transports/shm.md
// describes the same layout in prose. Both processes are on one machine, so
// integers are in the machine's byte order (little-endian on x86-64/arm64).
//
// Ownership of each word (who stores to it) and the memory ordering used on
// it are written next to it. Nothing read from this region is trusted: the
// transport validates every counter before using it as an index (see
// ring_transport.cc), and the immutable fields (magic ... wake) are checked
// when the client attaches; the magic also on every Read/Write.
//
// Thread-safety: a layout only; see shm_ring.h.

#ifndef IPCRPC_TRANSPORTS_SHM_RING_LAYOUT_H_
#define IPCRPC_TRANSPORTS_SHM_RING_LAYOUT_H_

#include <semaphore.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ipcrpc::shm {

// "IPCRPCSM" read as a little-endian 64-bit integer.
inline constexpr uint64_t kMagic = 0x4d53435052435049ull;
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kMinRingBytes = 4096;
inline constexpr uint64_t kMaxRingBytes = uint64_t{1} << 30;

inline constexpr int kServerSide = 0;
inline constexpr int kClientSide = 1;
inline constexpr int kClientToServerRing = 0;
inline constexpr int kServerToClientRing = 1;

// Values of ShmHeader::wake (the same numbers as wire::ShmParams::Wake).
inline constexpr uint32_t kWakeFutex = 1;
inline constexpr uint32_t kWakeSemaphore = 2;

static_assert(std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<int32_t>::is_always_lock_free,
              "shared-memory atomics must be lock-free (hence address-free)");
static_assert(sizeof(std::atomic<uint32_t>) == 4 && sizeof(std::atomic<uint64_t>) == 8 &&
                  sizeof(std::atomic<int32_t>) == 4,
              "atomics must have the size of the plain integer");
static_assert(sizeof(sem_t) == 32, "the layout reserves 32 bytes per sem_t");

// Per-side state, written only by that side. 128 bytes: two cache lines, so
// that the frequently stored `cpu` does not share a line with `closed`.
struct ShmSide {
  // 0 -> 1 when this side shuts down or is destroyed; stored (release) after
  // its last head store, so a reader that sees it (acquire) also sees all data.
  std::atomic<uint32_t> closed;    // +0
  // Server: 1 at creation. Client: 0 -> 1 once attached (before its ACK).
  std::atomic<uint32_t> attached;  // +4
  uint8_t reserved0[56];           // +8
  // The CPU this side last ran a Read/Write on (sched_getcpu), -1 unknown.
  // A hint for the peer's spin policy; relaxed.
  std::atomic<int32_t> cpu;        // +64
  uint8_t reserved1[60];           // +68
};
static_assert(sizeof(ShmSide) == 128);
static_assert(offsetof(ShmSide, closed) == 0);
static_assert(offsetof(ShmSide, attached) == 4);
static_assert(offsetof(ShmSide, cpu) == 64);

// Control block of one single-producer/single-consumer ring. 192 bytes: the
// producer's line, the consumer's line, and the two semaphores.
//
// head and tail count bytes ever written / read (64-bit, never wrap in
// practice); the data of byte n is at ring offset n & (ring_bytes - 1).
// Invariant: tail <= head <= tail + ring_bytes.
//
// The sleeping words are the futex words (FUTEX mode) and the "I sleep"
// flags (both modes): a waiter stores 1, issues a seq_cst fence, re-checks
// the ring and only then sleeps; a waker publishes its counter, issues a
// seq_cst fence, and wakes (FUTEX_WAKE / sem_post) only if it exchanges a
// 1 for a 0. See wake.h.
struct ShmRingControl {
  // --- Producer's cache line: the producer stores head on every write.
  // Bytes ever written. Producer: store(release) after copying the bytes.
  std::atomic<uint64_t> head;             // +0
  // 1 while the consumer waits for data. The consumer stores 1 (only when it
  // goes to sleep); the producer (or the consumer's own side) exchanges it
  // back to 0 to wake it. On the producer's line so that the producer's
  // check after every head store reads a line it already holds.
  std::atomic<uint32_t> reader_sleeping;  // +8
  uint8_t reserved0[52];                  // +12
  // --- Consumer's cache line: the consumer stores tail on every read.
  // Bytes ever read. Consumer: store(release) after copying the bytes out.
  std::atomic<uint64_t> tail;             // +64
  // 1 while the producer waits for space (same protocol, mirrored).
  std::atomic<uint32_t> writer_sleeping;  // +72
  uint8_t reserved1[52];                  // +76
  // --- SEMAPHORE mode only (process-shared, sem_init(.., 1, 0)); zero and
  // unused in FUTEX mode. Posted only by whoever flips the matching
  // sleeping word from 1 to 0.
  sem_t data_ready;                       // +128: the consumer sleeps on it
  sem_t space_ready;                      // +160: the producer sleeps on it
};
static_assert(sizeof(ShmRingControl) == 192);
static_assert(offsetof(ShmRingControl, head) == 0);
static_assert(offsetof(ShmRingControl, reader_sleeping) == 8);
static_assert(offsetof(ShmRingControl, tail) == 64);
static_assert(offsetof(ShmRingControl, writer_sleeping) == 72);
static_assert(offsetof(ShmRingControl, data_ready) == 128);
static_assert(offsetof(ShmRingControl, space_ready) == 160);

// The first 4096 bytes of the region. The server writes the immutable
// fields (magic ... wake) before it offers the memfd; nobody changes them.
struct ShmHeader {
  uint64_t magic;             // +0    kMagic
  uint32_t version;           // +8    kVersion
  uint32_t header_bytes;      // +12   kHeaderBytes
  uint64_t ring_bytes;        // +16   capacity of each ring, a power of two
  uint32_t wake;              // +24   kWakeFutex or kWakeSemaphore
  uint32_t reserved0;         // +28
  uint8_t reserved1[32];      // +32
  ShmSide side[2];            // +64   [kServerSide], [kClientSide]
  ShmRingControl ring[2];     // +320  [kClientToServerRing], [kServerToClientRing]
  uint8_t reserved2[kHeaderBytes - 704];  // +704: zero, up to 4096
};
static_assert(sizeof(ShmHeader) == kHeaderBytes);
static_assert(offsetof(ShmHeader, magic) == 0);
static_assert(offsetof(ShmHeader, version) == 8);
static_assert(offsetof(ShmHeader, header_bytes) == 12);
static_assert(offsetof(ShmHeader, ring_bytes) == 16);
static_assert(offsetof(ShmHeader, wake) == 24);
static_assert(offsetof(ShmHeader, side) == 64);
static_assert(offsetof(ShmHeader, ring) == 320);
static_assert(offsetof(ShmHeader, reserved2) == 704);

// Offset of ring `index`'s data in the region.
constexpr uint64_t RingDataOffset(int index, uint64_t ring_bytes) {
  return kHeaderBytes + static_cast<uint64_t>(index) * ring_bytes;
}

// Size of the whole region for rings of `ring_bytes`.
constexpr uint64_t RegionBytes(uint64_t ring_bytes) { return kHeaderBytes + 2 * ring_bytes; }

// True when `ring_bytes` is a power of two in [kMinRingBytes, kMaxRingBytes].
constexpr bool IsValidRingBytes(uint64_t ring_bytes) {
  return ring_bytes >= kMinRingBytes && ring_bytes <= kMaxRingBytes &&
         (ring_bytes & (ring_bytes - 1)) == 0;
}

}  // namespace ipcrpc::shm

#endif  // IPCRPC_TRANSPORTS_SHM_RING_LAYOUT_H_
