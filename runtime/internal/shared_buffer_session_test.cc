// SharedBufferSession in one process: an owner session's frames are fed to a
// peer session, as a connection would carry them (PROTOCOL.md §13).

#include "runtime/internal/shared_buffer_session.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "wire/frame.h"
#include "wire/shared_buffer_format.h"

namespace ipcrpc::internal {
namespace {

// Two sessions joined back to back; frames are applied at once.
struct Pair {
  std::shared_ptr<SharedBufferSession> owner;
  std::shared_ptr<SharedBufferSession> peer;
  absl::Status last_peer_status;
  absl::Status last_owner_status;

  explicit Pair(SharedBufferLimits limits = {}) {
    owner = std::make_shared<SharedBufferSession>(
        "owner", limits, [this](absl::string_view frames, absl::Span<const int> fds) {
          absl::StatusOr<FrameHeader> h = DecodeFrameHeader(frames.data());
          if (!h.ok()) return h.status();
          absl::string_view payload = frames.substr(kFrameHeaderSize);
          std::vector<ScopedFd> copies;
          for (int fd : fds) copies.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
          if (h->type == FrameType::kSegment) {
            last_peer_status = peer->OnSegment(payload, std::move(copies));
          } else if (h->type == FrameType::kSegmentRetire) {
            last_peer_status = peer->OnRetire(payload);
          }
          return absl::OkStatus();
        });
    peer = std::make_shared<SharedBufferSession>(
        "peer", limits, [this](absl::string_view frames, absl::Span<const int>) {
          last_owner_status = owner->OnRelease(frames.substr(kFrameHeaderSize));
          return absl::OkStatus();
        });
  }
  ~Pair() {
    owner->Close();
    peer->Close();
  }
};

TEST(SharedBufferSession, BytesWrittenByTheOwnerAreReadByThePeerAndSpaceIsReused) {
  Pair p;
  absl::StatusOr<AllocatedBuffer> a = p.owner->Allocate(1000);
  ASSERT_TRUE(a.ok()) << a.status();
  std::memset(a->data, 0x5a, a->size);
  BufferReference ref;
  ASSERT_TRUE(p.owner->AddRemote(a->key, &ref).ok());
  std::vector<ReceivedBuffer> holds;
  ASSERT_TRUE(p.peer->Resolve({ref}, &holds).ok());
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_EQ(holds[0].size(), 1000u);
  EXPECT_EQ(holds[0].data()[999], 0x5a);
  EXPECT_NE(holds[0].data(), a->data);  // a mapping of its own (read-only)

  p.owner->DropLocal(a->key);
  EXPECT_GT(p.owner->stats().allocated_bytes, 0u);  // the peer still holds it
  holds.clear();
  p.peer->FlushReleases();
  ASSERT_TRUE(p.last_owner_status.ok()) << p.last_owner_status;
  EXPECT_EQ(p.owner->stats().allocated_bytes, 0u);
  // A second release of the same reference is refused.
  std::string release;
  EncodeU32List({a->key}, &release);
  EXPECT_EQ(p.owner->OnRelease(release).code(), absl::StatusCode::kDataLoss);
}

TEST(SharedBufferSession, PeerMappingIsReadOnly) {
  Pair p;
  absl::StatusOr<AllocatedBuffer> a = p.owner->Allocate(64);
  ASSERT_TRUE(a.ok());
  BufferReference ref;
  ASSERT_TRUE(p.owner->AddRemote(a->key, &ref).ok());
  std::vector<ReceivedBuffer> holds;
  ASSERT_TRUE(p.peer->Resolve({ref}, &holds).ok());
  // Writing through the peer's mapping would fault: mprotect to write is refused.
  void* page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(holds[0].data()) &
                                       ~static_cast<uintptr_t>(getpagesize() - 1));
  EXPECT_NE(::mprotect(page, getpagesize(), PROT_READ | PROT_WRITE), 0);
  p.owner->DropLocal(a->key);
}

TEST(SharedBufferSession, BogusReferencesAreRefused) {
  Pair p;
  absl::StatusOr<AllocatedBuffer> a = p.owner->Allocate(100);
  ASSERT_TRUE(a.ok());
  BufferReference good;
  ASSERT_TRUE(p.owner->AddRemote(a->key, &good).ok());
  const uint64_t segment_size = 64 << 20;
  std::vector<ReceivedBuffer> holds;
  auto refuse = [&](BufferReference r) { return p.peer->Resolve({r}, &holds).code(); };
  BufferReference r = good;
  r.segment = 99;
  EXPECT_EQ(refuse(r), absl::StatusCode::kInvalidArgument);
  r = good;
  r.offset = segment_size;
  r.length = 1;
  EXPECT_EQ(refuse(r), absl::StatusCode::kInvalidArgument);
  r = good;
  r.offset = 8;
  r.length = ~uint64_t{0} - 4;  // offset + length overflows
  EXPECT_EQ(refuse(r), absl::StatusCode::kInvalidArgument);
  r = good;
  r.key = 0;
  EXPECT_EQ(refuse(r), absl::StatusCode::kInvalidArgument);
  r = good;
  r.key = kReceivedHandleBit | 1;
  EXPECT_EQ(refuse(r), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.peer->Resolve({good, good}, &holds).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(holds.empty());
  r = good;
  r.offset = segment_size - 1;
  r.length = 1;
  EXPECT_TRUE(p.peer->Resolve({r}, &holds).ok());  // the last byte is fine
  holds.clear();
  p.owner->DropLocal(a->key);
}

TEST(SharedBufferSession, SegmentsThatAreNotSealedMemfdsAreRefusedWithTheReason) {
  Pair p;
  std::string payload;
  EncodeSegmentAnnouncement({7, 4096}, &payload);
  std::vector<ScopedFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(p.peer->OnSegment(payload, std::move(fds)).ok());  // not a protocol error
  std::vector<ReceivedBuffer> holds;
  absl::Status s = p.peer->Resolve({{1, 7, 0, 1}}, &holds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a memfd"), absl::string_view::npos) << s;

  // An unsealed memfd (it could shrink under the mapping: SIGBUS).
  ScopedFd memfd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(memfd.get(), 4096), 0);
  EncodeSegmentAnnouncement({8, 4096}, &(payload = ""));
  fds.clear();
  fds.push_back(std::move(memfd));
  ASSERT_TRUE(p.peer->OnSegment(payload, std::move(fds)).ok());
  s = p.peer->Resolve({{1, 8, 0, 1}}, &holds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not sealed"), absl::string_view::npos) << s;

  // A sealed memfd whose size is not the one announced.
  memfd.reset(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(memfd.get(), 4096), 0);
  ASSERT_EQ(::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  EncodeSegmentAnnouncement({9, 1 << 20}, &(payload = ""));
  fds.clear();
  fds.push_back(std::move(memfd));
  ASSERT_TRUE(p.peer->OnSegment(payload, std::move(fds)).ok());
  EXPECT_EQ(p.peer->Resolve({{1, 9, 0, 1}}, &holds).code(), absl::StatusCode::kInvalidArgument);

  // Malformed frames and a segment announced twice are protocol errors.
  EXPECT_EQ(p.peer->OnSegment("short", {}).code(), absl::StatusCode::kDataLoss);
  fds.clear();
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EncodeSegmentAnnouncement({9, 4096}, &(payload = ""));
  EXPECT_EQ(p.peer->OnSegment(payload, std::move(fds)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(p.owner->OnRelease("abc").code(), absl::StatusCode::kDataLoss);
}

TEST(SharedBufferSession, PoolCapHoldsAndFreeSegmentsAreRetired) {
  Pair p(SharedBufferLimits{8 << 20, 2 << 20});
  std::vector<AllocatedBuffer> held;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<AllocatedBuffer> a = p.owner->Allocate(2 << 20);
    ASSERT_TRUE(a.ok()) << i << a.status();
    BufferReference ref;
    ASSERT_TRUE(p.owner->AddRemote(a->key, &ref).ok());
    p.owner->DropLocal(a->key);  // only the peer holds it now
    held.push_back(*a);
  }
  absl::StatusOr<AllocatedBuffer> over = p.owner->Allocate(1);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("peer has not released"), absl::string_view::npos);
  EXPECT_EQ(p.owner->stats().own_bytes, 8u << 20);
  // The peer releases two: their space is reused (no new segment).
  std::string release;
  EncodeU32List({held[0].key, held[1].key}, &release);
  ASSERT_TRUE(p.owner->OnRelease(release).ok());
  ASSERT_TRUE(p.owner->Allocate(2 << 20).ok());
  // A larger buffer retires free segments to fit under the cap.
  EncodeU32List({held[2].key, held[3].key}, &(release = ""));
  ASSERT_TRUE(p.owner->OnRelease(release).ok());
  absl::StatusOr<AllocatedBuffer> big = p.owner->Allocate(6 << 20);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_LE(p.owner->stats().own_bytes, 8u << 20);
  p.owner->DropLocal(big->key);
}

TEST(SharedBufferSession, CloseForgetsEverythingButLiveMappingsStay) {
  Pair p;
  absl::StatusOr<AllocatedBuffer> a = p.owner->Allocate(10);
  ASSERT_TRUE(a.ok());
  a->data[0] = 42;
  p.owner->Close();
  EXPECT_EQ(a->data[0], 42);  // the writer's mapping is its own
  EXPECT_EQ(p.owner->Allocate(10).status().code(), absl::StatusCode::kUnavailable);
  p.owner->DropLocal(a->key);  // harmless after Close
}

}  // namespace
}  // namespace ipcrpc::internal
