// The examples of docs/PROTOCOL.md, byte for byte, against a real server:
// a raw client that knows nothing but the document talks to ipcrpc.

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "examples/greeter/greeter.ipcrpc.pb.h"
#include "proto/ipcrpc/wire.pb.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "transports/unix_socket.h"

namespace ipcrpc {
namespace {

std::string Hex(absl::string_view hex) {
  std::string clean;
  for (char c : hex) {
    if (c != ' ') clean += c;
  }
  return absl::HexStringToBytes(clean);
}

// Greets without any metadata, so the reply frames are exactly the document's.
class PlainGreeter final : public demo::Greeter::Service {
  absl::Status SayHello(ServerContext*, const demo::HelloRequest* request,
                        demo::HelloReply* reply) override {
    reply->set_message("Hello, " + request->name() + "!");
    return absl::OkStatus();
  }
  absl::Status Chat(ServerContext*,
                    ServerReaderWriter<demo::HelloReply, demo::HelloRequest>* stream) override {
    demo::HelloRequest request;
    while (stream->Read(&request)) {
    }
    return absl::OkStatus();
  }
};

class RawClient {
 public:
  explicit RawClient(ServerOptions options = {}) {
    auto pair = MakeSocketPair();
    EXPECT_TRUE(pair.ok());
    client_ = std::move(pair->first);
    ServerBuilder builder;
    builder.RegisterService(&service_).SetOptions(options).AddTransport(std::move(pair->second));
    auto server = builder.BuildAndStart();
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void Send(const std::string& bytes) {
    absl::string_view chunks[] = {bytes};
    ASSERT_TRUE(client_->Write(chunks, absl::Now() + absl::Seconds(5)).ok());
  }
  // Reads exactly n bytes (or what arrives before the connection ends).
  std::string Receive(size_t n) {
    std::string out;
    char buf[4096];
    while (out.size() < n) {
      auto r = client_->Read(absl::MakeSpan(buf, std::min(sizeof(buf), n - out.size())),
                             absl::Now() + absl::Seconds(5));
      if (!r.ok()) break;
      out.append(buf, *r);
    }
    return out;
  }
  // Reads one whole frame; returns header + payload.
  std::string ReceiveFrame() {
    std::string header = Receive(16);
    if (header.size() < 16) return header;
    uint32_t len = static_cast<uint8_t>(header[8]) | (static_cast<uint8_t>(header[9]) << 8) |
                   (static_cast<uint8_t>(header[10]) << 16) |
                   (static_cast<uint8_t>(header[11]) << 24);
    return header + Receive(len);
  }
  bool ClosedByServer() {
    char c;
    auto r = client_->Read(absl::MakeSpan(&c, 1), absl::Now() + absl::Seconds(5));
    return absl::IsUnavailable(r.status());
  }

 private:
  PlainGreeter service_;
  std::unique_ptr<Transport> client_;
  std::unique_ptr<Server> server_;

 public:
  ~RawClient() { client_->Shutdown(); }
};

// HELLO with protocol_version 1 and nothing else (defaults for the rest).
const char kHello[] = "4952 01 01 00000000 02000000 0000 00 00  0801";

std::string CallStart(uint32_t id, const std::string& method) {
  wire::CallStart start;
  start.set_method(method);
  std::string payload = start.SerializeAsString();
  std::string h = Hex("4952 01 02 00000000 00000000 0000 00 00");
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>((id >> (8 * i)) & 0xff);
  h[8] = static_cast<char>(payload.size());
  return h + payload;
}

TEST(WireBytesTest, UnaryCallFromTheDocument) {
  RawClient c;
  c.Send(Hex(kHello));
  std::string hello = c.ReceiveFrame();
  ASSERT_GE(hello.size(), 16u);
  EXPECT_EQ(absl::BytesToHexString(hello.substr(0, 8)), "4952010100000000");
  wire::Hello server_hello;
  ASSERT_TRUE(server_hello.ParseFromString(hello.substr(16)));
  EXPECT_EQ(server_hello.protocol_version(), 1u);
  EXPECT_EQ(server_hello.max_message_size(), 4u << 20);
  EXPECT_EQ(server_hello.initial_stream_window(), 1u << 20);

  c.Send(Hex("4952 01 02 01000000 18000000 0000 00 00  0a16") + "/demo.Greeter/SayHello" +
         Hex("4952 01 03 01000000 05000000 0000 00 00  0a03") + "ada" +
         Hex("4952 01 04 01000000 00000000 0000 00 00"));
  EXPECT_EQ(absl::BytesToHexString(c.ReceiveFrame()),
            absl::BytesToHexString(Hex("4952 01 03 01000000 0d000000 0000 00 00  0a0b") +
                                   "Hello, ada!"));
  EXPECT_EQ(absl::BytesToHexString(c.ReceiveFrame()), "49520105010000000000000000000000");
}

TEST(WireBytesTest, UnknownMethodIsUnimplementedInTrailers) {
  RawClient c;
  c.Send(Hex(kHello));
  c.ReceiveFrame();
  c.Send(CallStart(1, "/demo.Greeter/Nope"));
  std::string frame = c.ReceiveFrame();
  ASSERT_GT(frame.size(), 16u);
  EXPECT_EQ(frame[3], 5);  // TRAILERS
  wire::Trailers t;
  ASSERT_TRUE(t.ParseFromString(frame.substr(16)));
  EXPECT_EQ(t.code(), 12);
  EXPECT_NE(t.message().find("Nope"), std::string::npos);
}

TEST(WireBytesTest, PingIsEchoedAndUnknownFrameTypesAreSkipped) {
  RawClient c;
  c.Send(Hex(kHello));
  c.ReceiveFrame();
  c.Send(Hex("4952 01 63 00000000 03000000 0000 00 00  aabbcc") +  // type 99: unknown
         Hex("4952 01 08 00000000 08000000 0000 00 00  0102030405060708"));
  EXPECT_EQ(absl::BytesToHexString(c.ReceiveFrame()),
            "4952010800000000080000000100000001" "02030405060708");
}

TEST(WireBytesTest, OversizedMessageFailsTheStreamNotTheConnection) {
  ServerOptions options;
  options.max_message_size = 64;
  RawClient c(options);
  c.Send(Hex(kHello));
  c.ReceiveFrame();
  c.Send(CallStart(1, "/demo.Greeter/SayHello") +
         Hex("4952 01 03 01000000 c8000000 0000 00 00") + std::string(200, 'x') +
         Hex("4952 01 04 01000000 00000000 0000 00 00"));
  std::string frame = c.ReceiveFrame();
  ASSERT_GT(frame.size(), 16u);
  wire::Trailers t;
  ASSERT_TRUE(t.ParseFromString(frame.substr(16)));
  EXPECT_EQ(t.code(), 8) << t.message();  // RESOURCE_EXHAUSTED
  // The same connection still serves calls.
  c.Send(CallStart(3, "/demo.Greeter/SayHello") +
         Hex("4952 01 03 03000000 05000000 0000 00 00  0a03") + "bob" +
         Hex("4952 01 04 03000000 00000000 0000 00 00"));
  EXPECT_EQ(c.ReceiveFrame().substr(16), Hex("0a0b") + "Hello, bob!");
}

// A unary method needs exactly one request: none, or two, is INTERNAL.
TEST(WireBytesTest, UnaryCallWithZeroOrTwoRequestsIsInternal) {
  RawClient c;
  c.Send(Hex(kHello));
  c.ReceiveFrame();
  const std::string ada = Hex("0a03") + "ada";
  auto message = [&](uint32_t id) {
    std::string h = Hex("4952 01 03 00000000 05000000 0000 00 00");
    h[4] = static_cast<char>(id);
    return h + ada;
  };
  auto half_close = [](uint32_t id) {
    std::string h = Hex("4952 01 04 00000000 00000000 0000 00 00");
    h[4] = static_cast<char>(id);
    return h;
  };
  for (auto [id, requests] : {std::pair<uint32_t, int>{1, 0}, {3, 2}}) {
    std::string call = CallStart(id, "/demo.Greeter/SayHello");
    for (int i = 0; i < requests; ++i) call += message(id);
    c.Send(call + half_close(id));
    std::string frame = c.ReceiveFrame();
    ASSERT_GT(frame.size(), 16u);
    EXPECT_EQ(frame[3], 5);  // TRAILERS
    wire::Trailers t;
    ASSERT_TRUE(t.ParseFromString(frame.substr(16)));
    EXPECT_EQ(t.code(), 13) << t.message();  // INTERNAL
    EXPECT_NE(t.message().find(requests == 0 ? "no request" : "more than one"),
              std::string::npos)
        << t.message();
  }
}

TEST(WireBytesTest, ProtocolViolationsCloseTheConnection) {
  {
    RawClient c;  // garbage instead of HELLO
    c.Send("GET / HTTP/1.1\r\n\r\n");
    c.ReceiveFrame();  // the server's own HELLO may arrive first
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    RawClient c;  // a first frame that is not HELLO
    c.Send(CallStart(1, "/demo.Greeter/SayHello"));
    c.ReceiveFrame();
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    RawClient c;  // stream ids must increase
    c.Send(Hex(kHello));
    c.ReceiveFrame();
    c.Send(CallStart(5, "/demo.Greeter/Nope"));
    c.ReceiveFrame();  // its TRAILERS
    c.Send(CallStart(3, "/demo.Greeter/Nope"));
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    RawClient c;  // a CREDIT payload must be exactly 4 bytes
    c.Send(Hex(kHello));
    c.ReceiveFrame();
    c.Send(CallStart(1, "/demo.Greeter/Chat") +
           Hex("4952 01 07 01000000 03000000 0000 00 00  010000"));
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    RawClient c;  // wrong protocol version in the header
    c.Send(Hex("4952 07 01 00000000 02000000 0000 00 00  0801"));
    c.ReceiveFrame();
    EXPECT_TRUE(c.ClosedByServer());
  }
}

}  // namespace
}  // namespace ipcrpc
