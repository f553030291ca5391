#include "runtime/internal/shared_buffer_session.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "wire/frame.h"

namespace ipcrpc::internal {
namespace {

constexpr uint64_t kSegmentGranule = uint64_t{2} << 20;  // new segments are multiples of 2 MiB

std::string StreamZeroFrame(FrameType type, const std::string& payload) {
  std::string out;
  AppendFrame(type, 0, payload, &out);
  return out;
}

}  // namespace

ReceivedBuffer& ReceivedBuffer::operator=(ReceivedBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    session_ = std::move(other.session_);
    mapping_ = std::move(other.mapping_);
    key_ = std::exchange(other.key_, 0);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void ReceivedBuffer::Release() {
  if (session_ != nullptr && key_ != 0) session_->QueueRelease(key_);
  session_.reset();
  mapping_.reset();
  key_ = 0;
  data_ = nullptr;
  size_ = 0;
}

SharedBufferSession::SharedBufferSession(std::string description, SharedBufferLimits limits,
                                         FrameWriter write)
    : description_(std::move(description)), limits_(limits), write_(std::move(write)) {}

uint32_t SharedBufferSession::NextIdLocked(uint32_t* counter) {
  if (*counter == 0 || *counter > kMaxSharedId) return 0;  // exhausted
  return (*counter)++;
}

absl::Status SharedBufferSession::PoolFullLocked(size_t size) const {
  uint64_t local = 0, remote = 0;
  for (const auto& [key, a] : allocations_) {
    if (a.remote > 0) {
      remote += a.length;
    } else {
      local += a.length;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the shared-buffer pool of connection ", description_, " cannot hold ", size,
      " more bytes: its segments take ", own_bytes_, " of its cap of ", limits_.pool_bytes,
      " bytes (shared_buffer_pool_bytes); ", remote,
      " bytes are in buffers the peer has not released yet, ", local,
      " in buffers only this process holds (writers alive or attached to a call)"));
}

absl::StatusOr<AllocatedBuffer> SharedBufferSession::AllocateLocked(size_t size) {
  for (auto& [id, segment] : own_) {
    std::optional<uint64_t> at = segment.allocator.Allocate(size);
    if (!at.has_value()) continue;
    const uint32_t key = NextIdLocked(&next_key_);
    if (key == 0) {
      segment.allocator.Free(*at);
      return absl::ResourceExhaustedError(absl::StrCat(
          "connection ", description_, " has used up its shared-buffer keys; reconnect"));
    }
    allocations_[key] = Allocation{id, *at, size, 1, 0};
    AllocatedBuffer out;
    out.key = key;
    out.data = segment.mapping->data() + *at;
    out.size = size;
    out.mapping = segment.mapping;
    return out;
  }
  return absl::NotFoundError("no room");
}

absl::StatusOr<AllocatedBuffer> SharedBufferSession::Allocate(size_t size) {
  absl::StatusOr<AllocatedBuffer> buffer = AllocateOnce(size);
  if (absl::IsResourceExhausted(buffer.status()) && read_waiting_ != nullptr &&
      size <= limits_.pool_bytes) {
    read_waiting_();  // releases may be waiting unread
    buffer = AllocateOnce(size);
  }
  return buffer;
}

absl::StatusOr<AllocatedBuffer> SharedBufferSession::AllocateOnce(size_t size) {
  if (size == 0) return absl::InvalidArgumentError("a shared buffer must have at least 1 byte");
  if (size > limits_.pool_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a shared buffer of ", size, " bytes is larger than the pool's cap of ",
        limits_.pool_bytes, " bytes (shared_buffer_pool_bytes) on connection ", description_));
  }
  const uint64_t segment_size =
      std::max<uint64_t>(limits_.arena_bytes,
                         (size + kSegmentGranule - 1) / kSegmentGranule * kSegmentGranule);
  std::vector<uint32_t> retired;
  uint32_t id = 0;
  {
    internal::MutexLock lock(&mu_);
    if (closed_) {
      return absl::UnavailableError(absl::StrCat("connection ", description_, " has ended"));
    }
    absl::StatusOr<AllocatedBuffer> fitted = AllocateLocked(size);
    if (!absl::IsNotFound(fitted.status())) return fitted;
    const uint64_t cap = std::max(limits_.pool_bytes, segment_size);
    // At the cap: retire segments nobody uses to make room.
    for (auto it = own_.begin(); it != own_.end() && own_bytes_ + segment_size > cap;) {
      if (it->second.allocator.empty()) {
        own_bytes_ -= it->second.allocator.size();
        retired.push_back(it->first);
        own_.erase(it++);
      } else {
        ++it;
      }
    }
    if (own_bytes_ + segment_size <= cap) {
      id = NextIdLocked(&next_segment_);
      if (id != 0) own_bytes_ += segment_size;  // reserved while it is made
    }
    if (id == 0 && retired.empty()) {
      return own_bytes_ + segment_size > cap ? PoolFullLocked(size)
                                             : absl::ResourceExhaustedError(absl::StrCat(
                                                   "connection ", description_,
                                                   " has used up its segment ids; reconnect"));
    }
  }
  if (!retired.empty()) {
    std::string payload;
    EncodeU32List(retired, &payload);
    write_(StreamZeroFrame(FrameType::kSegmentRetire, payload), {}).IgnoreError();
  }
  if (id == 0) {
    internal::MutexLock lock(&mu_);
    return PoolFullLocked(size);
  }
  absl::StatusOr<OwnedSegment> created = CreateSegment(segment_size);
  absl::Status announced = created.status();
  if (announced.ok()) {
    std::string payload;
    EncodeSegmentAnnouncement({id, segment_size}, &payload);
    std::string frame;
    FrameHeader h;
    h.type = FrameType::kSegment;
    h.length = static_cast<uint32_t>(payload.size());
    h.fd_count = 1;
    frame.resize(kFrameHeaderSize);
    EncodeFrameHeader(h, frame.data());
    frame += payload;
    const int fd = created->fd.get();
    announced = write_(frame, absl::MakeConstSpan(&fd, 1));
    if (!announced.ok()) {
      announced = absl::UnavailableError(absl::StrCat(
          "connection ", description_, " ended while announcing a shared-buffer segment: ",
          announced.message()));
    }
  }
  internal::MutexLock lock(&mu_);
  if (!announced.ok() || closed_) {
    if (!closed_) own_bytes_ -= segment_size;  // Close() has zeroed it
    if (announced.ok()) {
      announced = absl::UnavailableError(absl::StrCat("connection ", description_, " has ended"));
    }
    return announced;
  }
  own_.try_emplace(id, std::move(created->mapping), segment_size);
  return AllocateLocked(size);  // fits: nobody else could use the new segment yet
}

void SharedBufferSession::MaybeFreeLocked(uint32_t key, Allocation& a) {
  if (a.local > 0 || a.remote > 0) return;
  auto segment = own_.find(a.segment);
  if (segment != own_.end()) segment->second.allocator.Free(a.offset);
  allocations_.erase(key);
}

void SharedBufferSession::DropLocal(uint32_t key) {
  internal::MutexLock lock(&mu_);
  auto it = allocations_.find(key);
  if (it == allocations_.end() || it->second.local == 0) return;
  --it->second.local;
  MaybeFreeLocked(key, it->second);
}

absl::Status SharedBufferSession::AddRemote(uint32_t key, BufferReference* out) {
  internal::MutexLock lock(&mu_);
  auto it = allocations_.find(key);
  if (it == allocations_.end() || it->second.local == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a SharedBuffer field names buffer ", key, ", which is not held in the pool of "
        "connection ", description_, " (its writer was destroyed before the message was "
        "sent, or it was allocated on another connection)"));
  }
  ++it->second.remote;
  out->key = key;
  out->segment = it->second.segment;
  out->offset = it->second.offset;
  out->length = it->second.length;
  return absl::OkStatus();
}

void SharedBufferSession::UndoRemote(uint32_t key) {
  internal::MutexLock lock(&mu_);
  auto it = allocations_.find(key);
  if (it == allocations_.end() || it->second.remote == 0) return;
  --it->second.remote;
  MaybeFreeLocked(key, it->second);
}

absl::Status SharedBufferSession::OnRelease(absl::string_view payload) {
  std::vector<uint32_t> keys;
  if (!DecodeU32List(payload, &keys)) {
    return absl::DataLossError("BUFFER_RELEASE frame whose payload is not a list of u32");
  }
  internal::MutexLock lock(&mu_);
  if (closed_) return absl::OkStatus();
  for (uint32_t key : keys) {
    auto it = allocations_.find(key);
    if (it == allocations_.end() || it->second.remote == 0) {
      return absl::DataLossError(absl::StrCat(
          "protocol violation: the peer released shared buffer ", key,
          ", of which it holds no reference"));
    }
    --it->second.remote;
    MaybeFreeLocked(key, it->second);
  }
  return absl::OkStatus();
}

absl::Status SharedBufferSession::OnSegment(absl::string_view payload,
                                            std::vector<ScopedFd> fds) {
  SegmentAnnouncement s;
  if (!DecodeSegmentAnnouncement(payload, &s) || fds.size() != 1) {
    return absl::DataLossError("malformed SEGMENT frame (PROTOCOL.md §13)");
  }
  if (s.segment == 0 || s.segment > kMaxSharedId) {
    return absl::DataLossError(absl::StrCat("SEGMENT frame with invalid segment id ", s.segment));
  }
  {
    internal::MutexLock lock(&mu_);
    if (closed_) return absl::OkStatus();
    if (peer_.contains(s.segment)) {
      return absl::DataLossError(
          absl::StrCat("protocol violation: the peer announced segment ", s.segment, " twice"));
    }
  }
  PeerSegment segment;
  {
    internal::MutexLock lock(&mu_);
    if (peer_.size() >= kMaxPeerSegments || s.size > kMaxPeerSegmentBytes - peer_bytes_) {
      segment.refused = absl::ResourceExhaustedError(absl::StrCat(
          "segment ", s.segment, " (", s.size, " bytes) was refused: the peer's segments "
          "mapped here would pass ", kMaxPeerSegments, " segments or ", kMaxPeerSegmentBytes,
          " bytes"));
    }
  }
  if (segment.refused.ok()) {
    absl::StatusOr<std::shared_ptr<const SegmentMapping>> mapped =
        MapPeerSegment(fds[0].get(), s.size);
    if (mapped.ok()) {
      segment.mapping = std::move(*mapped);
    } else {
      segment.refused = absl::Status(
          mapped.status().code(),
          absl::StrCat("segment ", s.segment, " was refused: ", mapped.status().message()));
    }
  }
  fds.clear();  // the mapping keeps the pages
  internal::MutexLock lock(&mu_);
  if (closed_) return absl::OkStatus();
  if (segment.mapping != nullptr) peer_bytes_ += segment.mapping->size();
  peer_[s.segment] = std::move(segment);
  return absl::OkStatus();
}

absl::Status SharedBufferSession::OnRetire(absl::string_view payload) {
  std::vector<uint32_t> ids;
  if (!DecodeU32List(payload, &ids)) {
    return absl::DataLossError("SEGMENT_RETIRE frame whose payload is not a list of u32");
  }
  internal::MutexLock lock(&mu_);
  for (uint32_t id : ids) {
    auto it = peer_.find(id);
    if (it == peer_.end()) continue;  // already forgotten: harmless
    if (it->second.mapping != nullptr) peer_bytes_ -= it->second.mapping->size();
    peer_.erase(it);  // views still held keep their own mapping
  }
  return absl::OkStatus();
}

absl::Status SharedBufferSession::Resolve(const std::vector<BufferReference>& refs,
                                          std::vector<ReceivedBuffer>* out) {
  out->clear();
  struct Resolved {
    std::shared_ptr<const SegmentMapping> mapping;
    const BufferReference* ref;
  };
  std::vector<Resolved> resolved;
  resolved.reserve(refs.size());
  absl::Status bad;
  {
    absl::flat_hash_set<uint32_t> keys;
    internal::MutexLock lock(&mu_);
    for (const BufferReference& r : refs) {
      if (r.key == 0 || r.key > kMaxSharedId || !keys.insert(r.key).second) {
        bad = absl::InvalidArgumentError(absl::StrCat(
            "shared-buffer reference with key ", r.key,
            r.key == 0 || r.key > kMaxSharedId ? " (keys are 1..2^31-1)" : " named twice",
            " in one message"));
        break;
      }
      auto it = peer_.find(r.segment);
      if (it == peer_.end()) {
        bad = absl::InvalidArgumentError(absl::StrCat(
            "shared-buffer reference to segment ", r.segment,
            ", which the peer never announced (or retired)"));
        break;
      }
      if (!it->second.refused.ok()) {
        bad = it->second.refused;
        break;
      }
      const uint64_t size = it->second.mapping->size();
      if (r.offset > size || r.length > size - r.offset) {
        bad = absl::InvalidArgumentError(absl::StrCat(
            "shared-buffer reference [", r.offset, ", +", r.length, ") lies outside segment ",
            r.segment, " of ", size, " bytes"));
        break;
      }
      resolved.push_back({it->second.mapping, &r});
    }
  }
  // Holds are made (and, on failure, dropped: their releases queued, as the
  // owner counted every entry it sent) outside the lock.
  std::vector<ReceivedBuffer> holds;
  holds.reserve(resolved.size());
  for (Resolved& r : resolved) {
    const uint8_t* data = r.mapping->data() + r.ref->offset;
    holds.emplace_back(shared_from_this(), std::move(r.mapping), r.ref->key, data,
                       static_cast<size_t>(r.ref->length));
  }
  if (!bad.ok()) return bad;
  *out = std::move(holds);
  return absl::OkStatus();
}

void SharedBufferSession::QueueRelease(uint32_t key) {
  internal::MutexLock lock(&mu_);
  if (closed_) return;
  releases_.push_back(key);
  has_releases_.store(true, std::memory_order_release);
}

void SharedBufferSession::FlushReleases() {
  std::vector<uint32_t> keys;
  {
    internal::MutexLock lock(&mu_);
    if (releases_.empty()) return;
    keys.swap(releases_);
    has_releases_.store(false, std::memory_order_release);
  }
  std::string payload;
  EncodeU32List(keys, &payload);
  write_(StreamZeroFrame(FrameType::kBufferRelease, payload), {}).IgnoreError();
}

void SharedBufferSession::Close() {
  absl::flat_hash_map<uint32_t, OwnSegment> own;
  absl::flat_hash_map<uint32_t, PeerSegment> peer;
  {
    internal::MutexLock lock(&mu_);
    closed_ = true;
    own.swap(own_);
    peer.swap(peer_);
    allocations_.clear();
    releases_.clear();
    has_releases_.store(false, std::memory_order_release);
    own_bytes_ = 0;
    peer_bytes_ = 0;
  }
  // Unmapped here, outside the lock (writers and views keep their own).
}

SharedBufferSession::Stats SharedBufferSession::stats() const {
  internal::MutexLock lock(&mu_);
  Stats s;
  s.own_segments = own_.size();
  s.own_bytes = own_bytes_;
  for (const auto& [id, segment] : own_) s.allocated_bytes += segment.allocator.used();
  s.peer_segments = peer_.size();
  return s;
}

}  // namespace ipcrpc::internal
