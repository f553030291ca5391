// The shared frame vectors (tests/protocol/vectors/frames.txt) through the
// C++ frame codec: each vector's input, fed in its chunks, must give exactly
// its frames (then DATA_LOSS for `error` vectors), and every frame must
// re-encode to the same bytes. python/tests/test_vectors.py runs the same
// file through the Python codec, so the two implementations cannot drift.

#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "wire/frame.h"

namespace ipcrpc::internal {
namespace {

struct ExpectedFrame {
  bool oversized = false;
  uint32_t type = 0, stream_id = 0, flags_or_length = 0, fd_count = 0;
  std::string payload;
};

struct Vector {
  std::string name;
  size_t max_payload = 4 << 20;
  std::string input;
  std::vector<size_t> split;
  size_t split_every = 0;
  std::vector<ExpectedFrame> frames;
  bool error = false;
};

uint32_t Num(absl::string_view s) {
  uint32_t n = 0;
  EXPECT_TRUE(absl::SimpleAtoi(s, &n)) << s;
  return n;
}

std::vector<Vector> Load() {
  std::ifstream in("tests/protocol/vectors/frames.txt");
  EXPECT_TRUE(in.good()) << "cannot open tests/protocol/vectors/frames.txt";
  std::vector<Vector> out;
  Vector cur;
  bool open = false;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    std::vector<absl::string_view> w = absl::StrSplit(l, ' ', absl::SkipEmpty());
    if (w[0] == "vector") {
      EXPECT_FALSE(open) << "vector " << cur.name << " has no end";
      open = true;
      cur = Vector();
      cur.name = std::string(w[1]);
    } else if (w[0] == "max_payload") {
      cur.max_payload = Num(w[1]);
    } else if (w[0] == "input") {
      for (size_t i = 1; i < w.size(); ++i) cur.input += absl::HexStringToBytes(w[i]);
    } else if (w[0] == "split") {
      if (w[1] == "every") {
        cur.split_every = Num(w[2]);
      } else {
        for (size_t i = 1; i < w.size(); ++i) cur.split.push_back(Num(w[i]));
      }
    } else if (w[0] == "frame") {
      ExpectedFrame f;
      f.type = Num(w[1]);
      f.stream_id = Num(w[2]);
      f.flags_or_length = Num(w[3]);
      f.fd_count = Num(w[4]);
      if (w[5] != "-") f.payload = absl::HexStringToBytes(w[5]);
      cur.frames.push_back(f);
    } else if (w[0] == "oversized") {
      ExpectedFrame f;
      f.oversized = true;
      f.type = Num(w[1]);
      f.stream_id = Num(w[2]);
      f.flags_or_length = Num(w[3]);
      cur.frames.push_back(f);
    } else if (w[0] == "error") {
      cur.error = true;
    } else if (w[0] == "end") {
      out.push_back(cur);
      open = false;
    }
  }
  return out;
}

// Serves the input in the vector's chunks, then reports end of stream.
class ChunkedTransport final : public Transport {
 public:
  explicit ChunkedTransport(const Vector& v) {
    size_t pos = 0;
    if (v.split_every > 0) {
      for (; pos < v.input.size(); pos += v.split_every) chunks_.push_back(v.input.substr(pos, v.split_every));
      return;
    }
    for (size_t n : v.split) {
      chunks_.push_back(v.input.substr(pos, n));
      pos += n;
    }
    if (pos < v.input.size()) chunks_.push_back(v.input.substr(pos));
  }
  absl::Status Write(absl::Span<const absl::string_view>, absl::Time) override { return absl::OkStatus(); }
  absl::StatusOr<size_t> Read(absl::Span<char> buffer, absl::Time) override {
    while (!chunks_.empty() && chunks_.front().empty()) chunks_.pop_front();
    if (chunks_.empty()) return absl::UnavailableError("end of the vector");
    std::string& c = chunks_.front();
    size_t n = std::min(buffer.size(), c.size());
    std::copy_n(c.data(), n, buffer.data());
    c.erase(0, n);
    return n;
  }
  void Interrupt() override {}
  void Shutdown() override {}
  PeerCredentials peer() const override { return {}; }
  std::string description() const override { return "vector"; }

 private:
  std::deque<std::string> chunks_;
};

TEST(FrameVectorsTest, EveryVectorDecodesAndReencodes) {
  std::vector<Vector> vectors = Load();
  ASSERT_GE(vectors.size(), 15u);
  for (const Vector& v : vectors) {
    SCOPED_TRACE(v.name);
    ChunkedTransport transport(v);
    FrameReader reader(transport, v.max_payload);
    reader.set_headers_only_fd_count();  // the vectors carry fd_count without descriptors
    std::string reencoded;
    bool any_oversized = false;
    for (const ExpectedFrame& want : v.frames) {
      Frame got;
      absl::Status s = reader.ReadFrame(&got, absl::InfiniteFuture());
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(static_cast<uint32_t>(got.header.type), want.type);
      EXPECT_EQ(got.header.stream_id, want.stream_id);
      EXPECT_EQ(got.oversized, want.oversized);
      if (want.oversized) {
        any_oversized = true;
        EXPECT_EQ(got.header.length, want.flags_or_length);
        EXPECT_TRUE(got.payload.empty());
        continue;
      }
      EXPECT_EQ(got.header.flags, want.flags_or_length);
      EXPECT_EQ(got.header.fd_count, want.fd_count);
      EXPECT_EQ(absl::BytesToHexString(got.payload), absl::BytesToHexString(want.payload));
      char header[kFrameHeaderSize];
      EncodeFrameHeader(got.header, header);
      reencoded.append(header, kFrameHeaderSize);
      reencoded += got.payload;
    }
    Frame extra;
    absl::Status end = reader.ReadFrame(&extra, absl::InfiniteFuture());
    if (v.error) {
      EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss) << end;
    } else {
      EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable) << "a frame too many: " << end;
      if (!any_oversized) {
        EXPECT_EQ(absl::BytesToHexString(reencoded), absl::BytesToHexString(v.input));
      }
    }
  }
}

}  // namespace
}  // namespace ipcrpc::internal
