// Test helpers for shared buffers: a content pattern both processes can
// produce and check, and a checksum.

#ifndef IPCRPC_TESTS_E2E_SHARED_BUFFER_PATTERN_H_
#define IPCRPC_TESTS_E2E_SHARED_BUFFER_PATTERN_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace ipcrpc::test {

// Byte i of Pattern(seed): never periodic with a power-of-two period, so a
// misplaced offset shows.
inline uint8_t PatternByte(uint32_t seed, uint64_t i) {
  return static_cast<uint8_t>((i * 131 + (i >> 11) * 7 + seed * 37 + 1) & 0xff);
}

inline void FillPattern(absl::Span<uint8_t> out, uint32_t seed) {
  for (uint64_t i = 0; i < out.size(); ++i) out[i] = PatternByte(seed, i);
}


// Pattern(seed) at every `stride`-th byte and the last (stride <= 1: all).
inline void FillPatternSampled(absl::Span<uint8_t> out, uint32_t seed, uint64_t stride) {
  if (stride <= 1) return FillPattern(out, seed);
  for (uint64_t i = 0; i < out.size(); i += stride) out[i] = PatternByte(seed, i);
  if (!out.empty()) out[out.size() - 1] = PatternByte(seed, out.size() - 1);
}

// The first sampled byte (as FillPatternSampled writes them) that differs, or -1.
inline int64_t FirstSampledMismatch(absl::Span<const uint8_t> in, uint32_t seed, uint64_t stride) {
  if (stride <= 1) {
    for (uint64_t i = 0; i < in.size(); ++i) {
      if (in[i] != PatternByte(seed, i)) return static_cast<int64_t>(i);
    }
    return -1;
  }
  for (uint64_t i = 0; i < in.size(); i += stride) {
    if (in[i] != PatternByte(seed, i)) return static_cast<int64_t>(i);
  }
  if (!in.empty() && in[in.size() - 1] != PatternByte(seed, in.size() - 1)) {
    return static_cast<int64_t>(in.size() - 1);
  }
  return -1;
}

// The index of the first byte that differs from Pattern(seed), or -1.
inline int64_t FirstPatternMismatch(absl::Span<const uint8_t> in, uint32_t seed) {
  return FirstSampledMismatch(in, seed, 1);
}

// FNV-1a 64, continued from `hash`.
inline uint64_t Fnv1a(absl::Span<const uint8_t> bytes, uint64_t hash = 14695981039346656037ull) {
  for (uint8_t b : bytes) {
    hash ^= b;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SHARED_BUFFER_PATTERN_H_
