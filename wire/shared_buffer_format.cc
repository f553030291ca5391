#include "wire/shared_buffer_format.h"

namespace ipcrpc::internal {
namespace {

void PutLe(uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

void EncodeSegmentAnnouncement(const SegmentAnnouncement& s, std::string* out) {
  PutLe(s.segment, 4, out);
  PutLe(0, 4, out);
  PutLe(s.size, 8, out);
}

bool DecodeSegmentAnnouncement(absl::string_view payload, SegmentAnnouncement* s) {
  if (payload.size() != kSegmentPayloadBytes) return false;
  s->segment = static_cast<uint32_t>(GetLe(payload.data(), 4));
  s->size = GetLe(payload.data() + 8, 8);
  return true;
}

void EncodeU32List(const std::vector<uint32_t>& values, std::string* out) {
  for (uint32_t v : values) PutLe(v, 4, out);
}

bool DecodeU32List(absl::string_view payload, std::vector<uint32_t>* values) {
  if (payload.size() % 4 != 0) return false;
  values->clear();
  for (size_t at = 0; at < payload.size(); at += 4) {
    values->push_back(static_cast<uint32_t>(GetLe(payload.data() + at, 4)));
  }
  return true;
}

void EncodeBufferTable(const std::vector<BufferReference>& refs, std::string* out) {
  for (const BufferReference& r : refs) {
    PutLe(r.key, 4, out);
    PutLe(r.segment, 4, out);
    PutLe(r.offset, 8, out);
    PutLe(r.length, 8, out);
  }
  PutLe(refs.size(), 4, out);
}

bool DecodeBufferTable(absl::string_view payload, absl::string_view* message,
                       std::vector<BufferReference>* refs) {
  if (payload.size() < kBufferCountBytes) return false;
  const uint64_t n = GetLe(payload.data() + payload.size() - kBufferCountBytes, 4);
  if (n > kMaxBuffersPerMessage) return false;
  const uint64_t table = n * kBufferEntryBytes + kBufferCountBytes;
  if (table > payload.size()) return false;
  const char* p = payload.data() + (payload.size() - table);
  refs->clear();
  refs->reserve(n);
  for (uint64_t i = 0; i < n; ++i, p += kBufferEntryBytes) {
    BufferReference r;
    r.key = static_cast<uint32_t>(GetLe(p, 4));
    r.segment = static_cast<uint32_t>(GetLe(p + 4, 4));
    r.offset = GetLe(p + 8, 8);
    r.length = GetLe(p + 16, 8);
    refs->push_back(r);
  }
  *message = payload.substr(0, payload.size() - table);
  return true;
}

}  // namespace ipcrpc::internal
