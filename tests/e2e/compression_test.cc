// Message compression (runtime/compression.h, docs/PROTOCOL.md §2
// "Compressed messages") between real processes: both directions on every
// transport, per-call overrides, negotiation with peers that do not offer
// it, and hostile payloads — a raw client against test_server, and a raw
// server (a thread of this test) against a C++ channel.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/ipcrpc/wire.pb.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"
#include "tests/testing/temp_dir.h"
#include "wire/compression.h"
#include "wire/frame.h"

namespace ipcrpc::test {
namespace {

using internal::FrameHeader;
using internal::FrameType;

constexpr char kEcho[] = "/ipcrpc.test.TestService/Echo";

std::string Compressible(size_t n) {
  std::string s;
  while (s.size() < n) absl::StrAppend(&s, "row ", s.size() % 977, " of a compressible payload; ");
  s.resize(n);
  return s;
}

std::shared_ptr<Channel> MustCreateChannel(const std::string& address,
                                           const ChannelOptions& options) {
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address, options);
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

std::string WithTransport(std::string address, const std::string& transport) {
  return address.replace(0, address.find(':'), transport);
}

// --- Every kind, both directions, every transport ---------------------------

class CompressionTransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  CompressionTransportTest() : server_({"--compress"}) {
    ChannelOptions options;
    options.default_compression_algorithm = CompressionAlgorithm::kGzip;
    stub_ = TestService::NewStub(
        MustCreateChannel(WithTransport(server_.address(), GetParam()), options));
  }

  ServerProcess server_;
  std::shared_ptr<TestService::Stub> stub_;
  const std::string payload_ = Compressible(300 * 1024);  // beyond the 128 KiB streamed size
};

TEST_P(CompressionTransportTest, AllKindsRoundTrip) {
  Request request;
  request.set_payload(payload_);
  Response response;
  {
    ClientContext ctx;
    ASSERT_TRUE(stub_->Echo(&ctx, request, &response).ok());
    EXPECT_EQ(response.payload(), payload_);
  }
  {
    ClientContext ctx;  // the call overrides the channel: sent uncompressed
    ctx.set_compression_algorithm(CompressionAlgorithm::kNone);
    ctx.AddMetadata("response-compression", "identity");  // and so does the server
    ASSERT_TRUE(stub_->Echo(&ctx, request, &response).ok());
    EXPECT_EQ(response.payload(), payload_);
  }
  {
    ClientContext ctx;
    request.set_count(3);
    auto reader = stub_->ServerStream(&ctx, request);
    int n = 0;
    while (reader->Read(&response)) {
      EXPECT_EQ(response.payload(), payload_);
      ++n;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(n, 3);
  }
  {
    ClientContext ctx;
    auto writer = stub_->ClientStream(&ctx, &response);
    Request part;
    part.set_text(Compressible(2000));
    // More than the 1 MiB stream window in uncompressed bytes: the window
    // counts the compressed bytes on both sides, or this would stall.
    for (int i = 0; i < 40; ++i) {
      part.set_payload(payload_);
      ASSERT_TRUE(writer->Write(part));
    }
    ASSERT_TRUE(writer->WritesDone());
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(response.index(), 40);
  }
  {
    ClientContext ctx;
    auto stream = stub_->Bidi(&ctx);
    for (int i = 0; i < 5; ++i) {
      request.set_text(absl::StrCat(i));
      ASSERT_TRUE(stream->Write(request));
      ASSERT_TRUE(stream->Read(&response));
      EXPECT_EQ(response.payload(), payload_);
    }
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, CompressionTransportTest,
                         ::testing::ValuesIn(TransportsUnderTest()));

// --- Negotiation --------------------------------------------------------------

// A client that wants gzip, a server that does not offer it: the requests go
// uncompressed (a compressed one would get UNIMPLEMENTED).
TEST(CompressionNegotiationTest, ServerThatDoesNotAcceptGetsPlainRequests) {
  ServerProcess server({"--no_accept_compression"});
  ChannelOptions options;
  options.default_compression_algorithm = CompressionAlgorithm::kGzip;
  auto stub = TestService::NewStub(MustCreateChannel(server.address(), options));
  ClientContext ctx;
  ctx.set_compression_algorithm(CompressionAlgorithm::kGzip);
  Request request;
  request.set_payload(Compressible(100000));
  Response response;
  ASSERT_TRUE(stub->Echo(&ctx, request, &response).ok());
  EXPECT_EQ(response.payload(), request.payload());
}

// A server that compresses, a client that does not accept it: the responses
// go uncompressed (a compressed one would fail the call INTERNAL).
TEST(CompressionNegotiationTest, ClientThatDoesNotAcceptGetsPlainResponses) {
  ServerProcess server({"--compress"});
  ChannelOptions options;
  options.accept_compression = false;
  auto stub = TestService::NewStub(MustCreateChannel(server.address(), options));
  ClientContext ctx;
  Request request;
  request.set_payload(Compressible(100000));
  Response response;
  ASSERT_TRUE(stub->Echo(&ctx, request, &response).ok());
  EXPECT_EQ(response.payload(), request.payload());
}

// --- A raw client against test_server ----------------------------------------

class RawClient {
 public:
  RawClient(const ServerProcess& server, uint32_t accept_compression)
      : fd_(ConnectRaw(server.socket_path())) {
    EXPECT_GE(fd_, 0);
    wire::Hello hello;
    hello.set_protocol_version(1);
    hello.set_accept_compression(accept_compression);  // 0: as an older peer (or Python) says
    std::string out;
    internal::AppendProtoFrame(FrameType::kHello, 0, hello, hello.ByteSizeLong(), &out);
    EXPECT_TRUE(SendAll(fd_, out));
    std::string frame = ReceiveFrame(fd_);
    absl::StatusOr<FrameHeader> h = internal::DecodeFrameHeader(frame.data());
    EXPECT_TRUE(h.ok() && h->type == FrameType::kHello);
    EXPECT_TRUE(server_hello_.ParseFromString(frame.substr(16)));
  }
  ~RawClient() { close(fd_); }

  // Calls Echo with `message_payload` as its MESSAGE (flags as given).
  void SendEcho(uint32_t id, const std::string& message_payload, uint16_t flags,
                const std::string& response_compression = "") {
    wire::CallStart start;
    start.set_method(kEcho);
    if (!response_compression.empty()) {
      wire::MetadataEntry* e = start.add_metadata();
      e->set_key("response-compression");
      e->set_value(response_compression);
    }
    std::string out;
    internal::AppendProtoFrame(FrameType::kCallStart, id, start, start.ByteSizeLong(), &out);
    internal::AppendFrame(FrameType::kMessage, id, message_payload, &out, flags);
    internal::AppendFrame(FrameType::kHalfClose, id, {}, &out);
    ASSERT_TRUE(SendAll(fd_, out));
  }

  // Reads frames of stream `id` until its TRAILERS: the MESSAGE frames'
  // headers and payloads, and the status code.
  struct Outcome {
    std::vector<FrameHeader> message_headers;
    std::vector<std::string> messages;
    int code = -1;
    std::string status_message;
  };
  Outcome ReadCall(uint32_t id) {
    Outcome out;
    for (;;) {
      std::string frame = ReceiveFrame(fd_);
      if (frame.size() < 16) return out;  // the connection ended
      absl::StatusOr<FrameHeader> h = internal::DecodeFrameHeader(frame.data());
      if (!h.ok() || h->stream_id != id) continue;
      if (h->type == FrameType::kMessage) {
        out.message_headers.push_back(*h);
        out.messages.push_back(frame.substr(16));
      } else if (h->type == FrameType::kTrailers) {
        wire::Trailers trailers;
        trailers.ParseFromString(frame.substr(16));
        out.code = trailers.code();
        out.status_message = trailers.message();
        return out;
      }
    }
  }

  const wire::Hello& server_hello() const { return server_hello_; }

 private:
  const int fd_;
  wire::Hello server_hello_;
};

std::string EchoRequest(const std::string& payload) {
  Request request;
  request.set_payload(payload);
  return request.SerializeAsString();
}

std::string Gzip(const std::string& plain) {
  std::string packed;
  EXPECT_TRUE(internal::Compress(internal::kCompressionGzip, plain, &packed));
  return packed;
}

TEST(CompressionWireTest, OlderPeerIsNeverSentCompressedMessages) {
  ServerProcess server({"--compress"});
  RawClient client(server, /*accept_compression=*/0);
  EXPECT_EQ(client.server_hello().accept_compression(), 1u << internal::kCompressionGzip);
  const std::string payload = Compressible(50000);
  client.SendEcho(1, EchoRequest(payload), 0);
  RawClient::Outcome out = client.ReadCall(1);
  EXPECT_EQ(out.code, 0) << out.status_message;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.message_headers[0].flags, 0);
  Response response;
  ASSERT_TRUE(response.ParseFromString(out.messages[0]));
  EXPECT_EQ(response.payload(), payload);
}

TEST(CompressionWireTest, AcceptingPeerGetsGzipAndMaySendIt) {
  ServerProcess server({"--compress"});
  RawClient client(server, 1u << internal::kCompressionGzip);
  const std::string payload = Compressible(50000);
  client.SendEcho(1, Gzip(EchoRequest(payload)), internal::kCompressionGzip);
  RawClient::Outcome out = client.ReadCall(1);
  EXPECT_EQ(out.code, 0) << out.status_message;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.message_headers[0].flags, internal::kCompressionGzip);
  EXPECT_LT(out.messages[0].size(), payload.size() / 4);
  std::string plain;
  ASSERT_TRUE(internal::Decompress(internal::kCompressionGzip, out.messages[0], 1 << 22, &plain)
                  .ok());
  Response response;
  ASSERT_TRUE(response.ParseFromString(plain));
  EXPECT_EQ(response.payload(), payload);

  // Per call, the handler turns it off (ServerContext::set_compression_algorithm).
  client.SendEcho(3, EchoRequest(payload), 0, "identity");
  out = client.ReadCall(3);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.message_headers[0].flags, 0);
}

// The server's config file sets what its code would: the default response
// compression and whether it accepts compressed requests.
TEST(CompressionWireTest, TheServerConfigFileSetsCompression) {
  {
    ServerProcess server({}, R"pb(server { compression: "gzip" })pb");
    RawClient client(server, 1u << internal::kCompressionGzip);
    const std::string payload = Compressible(50000);
    client.SendEcho(1, EchoRequest(payload), 0);
    RawClient::Outcome out = client.ReadCall(1);
    EXPECT_EQ(out.code, 0) << out.status_message;
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.message_headers[0].flags, internal::kCompressionGzip);
  }
  {
    ServerProcess server({}, R"pb(server { accept_compression: false })pb");
    RawClient client(server, 1u << internal::kCompressionGzip);
    EXPECT_EQ(client.server_hello().accept_compression(), 0u);
    const std::string payload = Compressible(50000);
    client.SendEcho(1, EchoRequest(payload), 0);
    RawClient::Outcome out = client.ReadCall(1);
    EXPECT_EQ(out.code, 0) << out.status_message;
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.message_headers[0].flags, 0) << "not configured to compress";
  }
}

TEST(CompressionWireTest, CorruptUnknownAndUnofferedAreRefusedAndTheConnectionLives) {
  ServerProcess server;
  RawClient client(server, 0);
  const std::string plain = EchoRequest(Compressible(20000));
  std::string corrupt = Gzip(plain);
  corrupt[corrupt.size() / 2] ^= 0x5a;
  corrupt[corrupt.size() - 2] ^= 0x5a;
  client.SendEcho(1, corrupt, internal::kCompressionGzip);
  RawClient::Outcome out = client.ReadCall(1);
  EXPECT_EQ(out.code, static_cast<int>(absl::StatusCode::kInternal)) << out.status_message;

  client.SendEcho(3, Gzip(plain), 9);  // an algorithm id nobody defined
  out = client.ReadCall(3);
  EXPECT_EQ(out.code, static_cast<int>(absl::StatusCode::kUnimplemented)) << out.status_message;

  client.SendEcho(5, Gzip(plain).substr(0, 100), internal::kCompressionGzip);  // truncated
  out = client.ReadCall(5);
  EXPECT_EQ(out.code, static_cast<int>(absl::StatusCode::kInternal)) << out.status_message;

  client.SendEcho(7, plain, 0);  // the connection still serves calls
  out = client.ReadCall(7);
  EXPECT_EQ(out.code, 0) << out.status_message;
}

TEST(CompressionWireTest, ServerThatDidNotOfferRefusesCompressedRequests) {
  ServerProcess server({"--no_accept_compression"});
  RawClient client(server, 0);
  EXPECT_EQ(client.server_hello().accept_compression(), 0u);
  client.SendEcho(1, Gzip(EchoRequest(Compressible(20000))), internal::kCompressionGzip);
  RawClient::Outcome out = client.ReadCall(1);
  EXPECT_EQ(out.code, static_cast<int>(absl::StatusCode::kUnimplemented)) << out.status_message;
}

TEST(CompressionWireTest, ZipBombIsBoundedByTheMessageLimit) {
  ServerProcess server;
  RawClient client(server, 0);
  // 64 MiB once decompressed (~64 KiB compressed), against a 4 MiB limit.
  const std::string bomb = Gzip(EchoRequest(std::string(64 << 20, '\0')));
  ASSERT_LT(bomb.size(), 1u << 20);
  const int64_t rss_before = server.RssBytes();
  for (uint32_t id = 1; id <= 5; id += 2) {
    client.SendEcho(id, bomb, internal::kCompressionGzip);
    RawClient::Outcome out = client.ReadCall(id);
    EXPECT_EQ(out.code, static_cast<int>(absl::StatusCode::kResourceExhausted))
        << out.status_message;
  }
  // Each bomb cost the server at most the 4 MiB limit, and only for a moment.
  EXPECT_LT(server.RssBytes() - rss_before, int64_t{64} << 20);
}

// --- A raw server against a C++ channel -------------------------------------

// Serves one connection on a unix socket: reads the client's HELLO and
// first call, then answers with `reply` (whole frames for stream 1).
class RawServer {
 public:
  RawServer(uint32_t accept_compression, std::string reply)
      : path_(dir_.File("raw.sock")), accept_(accept_compression), reply_(std::move(reply)) {
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 1), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawServer() {
    thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
  }
  std::string address() const { return "unix:" + path_; }
  // What the client sent (valid once the call returned).
  uint32_t client_accept() const { return client_accept_; }
  uint16_t request_flags() const { return request_flags_; }
  const std::string& request_payload() const { return request_payload_; }

 private:
  void Serve() {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string frame = ReceiveFrame(fd);
    wire::Hello theirs;
    if (frame.size() >= 16) theirs.ParseFromString(frame.substr(16));
    client_accept_ = theirs.accept_compression();
    wire::Hello ours;
    ours.set_protocol_version(1);
    ours.set_accept_compression(accept_);
    std::string out;
    internal::AppendProtoFrame(FrameType::kHello, 0, ours, ours.ByteSizeLong(), &out);
    SendAll(fd, out);
    for (;;) {  // CALL_START, MESSAGE, HALF_CLOSE
      frame = ReceiveFrame(fd);
      if (frame.size() < 16) break;
      absl::StatusOr<FrameHeader> h = internal::DecodeFrameHeader(frame.data());
      if (!h.ok()) break;
      if (h->type == FrameType::kMessage) {
        request_flags_ = h->flags;
        request_payload_ = frame.substr(16);
      }
      if (h->type == FrameType::kHalfClose) break;
    }
    SendAll(fd, reply_);
    // Wait for the client to hang up (or cancel), then close.
    while (ReceiveFrame(fd).size() >= 16) {
    }
    close(fd);
  }

  testing::ScopedTempDir dir_;
  const std::string path_;
  const uint32_t accept_;
  const std::string reply_;
  int listen_fd_ = -1;
  std::thread thread_;
  uint32_t client_accept_ = 0;
  uint16_t request_flags_ = 0xFFFF;
  std::string request_payload_;
};

std::string Reply(const std::string& message, uint16_t flags) {
  std::string out;
  internal::AppendFrame(FrameType::kMessage, 1, message, &out, flags);
  internal::AppendFrame(FrameType::kTrailers, 1, {}, &out);  // OK
  return out;
}

absl::Status CallRawServer(RawServer& server, const ChannelOptions& options,
                           const std::string& payload) {
  auto stub = TestService::NewStub(MustCreateChannel(server.address(), options));
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(20));
  Request request;
  request.set_payload(payload);
  Response response;
  return stub->Echo(&ctx, request, &response);
}

TEST(CompressionClientTest, SendsGzipOnlyToAServerThatOffersIt) {
  Response response;
  response.set_text("ok");
  const std::string payload = Compressible(40000);
  ChannelOptions gzip;
  gzip.default_compression_algorithm = CompressionAlgorithm::kGzip;
  {
    RawServer server(1u << internal::kCompressionGzip, Reply(response.SerializeAsString(), 0));
    EXPECT_TRUE(CallRawServer(server, gzip, payload).ok());
    EXPECT_EQ(server.client_accept(), 1u << internal::kCompressionGzip);
    EXPECT_EQ(server.request_flags(), internal::kCompressionGzip);
    std::string plain;
    ASSERT_TRUE(internal::Decompress(internal::kCompressionGzip, server.request_payload(),
                                     1 << 22, &plain)
                    .ok());
    Request request;
    ASSERT_TRUE(request.ParseFromString(plain));
    EXPECT_EQ(request.payload(), payload);
  }
  {
    RawServer server(0, Reply(response.SerializeAsString(), 0));  // an older server
    EXPECT_TRUE(CallRawServer(server, gzip, payload).ok());
    EXPECT_EQ(server.request_flags(), 0);
  }
}

TEST(CompressionClientTest, BadCompressedResponsesFailTheCallClearly) {
  Response big;
  big.set_payload(std::string(16 << 20, 'z'));  // against the 4 MiB receive limit
  const std::string bomb = Gzip(big.SerializeAsString());
  std::string corrupt = Gzip(Response().SerializeAsString() + Compressible(5000));
  corrupt[corrupt.size() / 2] ^= 0x5a;
  corrupt[corrupt.size() - 2] ^= 0x5a;
  {
    RawServer server(0, Reply(corrupt, internal::kCompressionGzip));
    absl::Status s = CallRawServer(server, {}, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  }
  {
    RawServer server(0, Reply(bomb, internal::kCompressionGzip));
    absl::Status s = CallRawServer(server, {}, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  }
  {
    RawServer server(0, Reply(Gzip(Compressible(5000)), 11));  // unknown algorithm
    absl::Status s = CallRawServer(server, {}, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  }
  {
    ChannelOptions refuse;  // gzip, though this client said it does not accept it
    refuse.accept_compression = false;
    RawServer server(0, Reply(Gzip(Compressible(5000)), internal::kCompressionGzip));
    absl::Status s = CallRawServer(server, refuse, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
    EXPECT_EQ(server.client_accept(), 0u);
  }
}

}  // namespace
}  // namespace ipcrpc::test
