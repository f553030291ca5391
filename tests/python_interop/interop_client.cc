// A C++ client that checks one behaviour of a TestService server, for the
// Python package's interop tests (python/tests/test_cpp_client.py), which
// run it against a Python server in another process.
//
//   interop_client ADDRESS CASE [SERVER_PID]
//
// Prints "PASS CASE" and exits 0, or "FAIL CASE: why" and exits 1. CASE is
// one of the names in Cases() below; the fd_* cases call the server's
// FdService (tests/e2e/fd_service.proto) instead of TestService. With INTEROP_COMPRESSION=gzip in the
// environment, the main channel asks for gzip (a server that does not
// accept it must still get plain messages).

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/empty.pb.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/fd_service.ipcrpc.pb.h"
#include "tests/e2e/fd_util.h"
#include "tests/e2e/test_service.ipcrpc.pb.h"

namespace ipcrpc::test {
namespace {

using Stub = TestService::Stub;

// A failed check: the message says what differed.
struct Failure {
  std::string message;
};

#define CHECK_OR_FAIL(cond, ...)                                             \
  do {                                                                       \
    if (!(cond)) return Failure{absl::StrCat(#cond, ": ", __VA_ARGS__)};     \
  } while (0)

using Result = std::optional<Failure>;

struct Env {
  std::string address;
  int server_pid = 0;
  Stub* stub = nullptr;
  FdService::Stub* fd_stub = nullptr;
};

std::string LastCancel(Stub& stub) {
  for (int i = 0; i < 500; ++i) {
    ClientContext ctx;
    Response r;
    if (!stub.LastCancel(&ctx, google::protobuf::Empty(), &r).ok()) return "error";
    if (r.text() != "waiting") return r.text();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return "waiting";
}

void AwaitWaiting(Stub& stub) {
  for (int i = 0; i < 500; ++i) {
    ClientContext ctx;
    Response r;
    if (stub.LastCancel(&ctx, google::protobuf::Empty(), &r).ok() && r.text() == "waiting") return;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

Result Unary(Env& env) {
  ClientContext ctx;
  Request req;
  req.set_text("hello");
  req.set_payload(std::string("\0\xff", 2));
  Response resp;
  absl::Status s = env.stub->Echo(&ctx, req, &resp);
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(resp.text() == "hello", resp.text());
  CHECK_OR_FAIL(resp.payload() == req.payload(), "payload differs");
  CHECK_OR_FAIL(resp.peer_pid() == getpid(), resp.peer_pid());
  if (env.server_pid != 0) CHECK_OR_FAIL(ctx.peer().pid == env.server_pid, ctx.peer().pid);
  return std::nullopt;
}

Result Metadata(Env& env) {
  ClientContext ctx;
  ctx.AddMetadata("echo-color", "blue");
  ctx.AddMetadata("echo-bytes-bin", std::string("\0\xff", 2));  // not printable ASCII: a -bin key (gRPC's rule)
  Response resp;
  absl::Status s = env.stub->Echo(&ctx, Request(), &resp);
  CHECK_OR_FAIL(s.ok(), s.ToString());
  const auto& initial = ctx.GetServerInitialMetadata();
  const auto& trailing = ctx.GetServerTrailingMetadata();
  CHECK_OR_FAIL(initial.count("initial-color") == 1, initial.size());
  CHECK_OR_FAIL(initial.find("initial-color")->second == "blue", "initial-color");
  CHECK_OR_FAIL(trailing.count("trailing-bytes-bin") == 1, trailing.size());
  CHECK_OR_FAIL(trailing.find("trailing-bytes-bin")->second == std::string("\0\xff", 2), "trailing-bytes-bin");
  return std::nullopt;
}

Result EveryErrorCode(Env& env) {
  for (int code = 1; code <= 16; ++code) {
    ClientContext ctx;
    Request req;
    req.set_status_code(code);
    req.set_status_message(absl::StrCat("failure ", code));
    Response resp;
    absl::Status s = env.stub->Echo(&ctx, req, &resp);
    CHECK_OR_FAIL(static_cast<int>(s.code()) == code, s.ToString());
    CHECK_OR_FAIL(s.message() == absl::StrCat("failure ", code), s.ToString());
  }
  return std::nullopt;
}

Result ServerStream(Env& env) {
  ClientContext ctx;
  Request req;
  req.set_count(50);
  auto reader = env.stub->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  while (reader->Read(&r)) {
    CHECK_OR_FAIL(r.index() == n, r.index());
    ++n;
  }
  absl::Status s = reader->Finish();
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(n == 50, n);
  return std::nullopt;
}

Result ServerStreamError(Env& env) {
  ClientContext ctx;
  Request req;
  req.set_count(3);
  req.set_status_code(static_cast<int>(absl::StatusCode::kAborted));
  req.set_status_message("stopped");
  auto reader = env.stub->ServerStream(&ctx, req);
  Response r;
  int n = 0;
  while (reader->Read(&r)) ++n;
  absl::Status s = reader->Finish();
  CHECK_OR_FAIL(n == 3, n);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kAborted && s.message() == "stopped", s.ToString());
  return std::nullopt;
}

Result ClientStream(Env& env) {
  ClientContext ctx;
  Response resp;
  auto writer = env.stub->ClientStream(&ctx, &resp);
  for (int i = 0; i < 20; ++i) {
    Request req;
    req.set_text(std::to_string(i % 10));
    CHECK_OR_FAIL(writer->Write(req), i);
  }
  CHECK_OR_FAIL(writer->WritesDone(), "WritesDone");
  absl::Status s = writer->Finish();
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(resp.index() == 20 && resp.text() == "01234567890123456789", resp.text());
  return std::nullopt;
}

Result Bidi(Env& env) {
  ClientContext ctx;
  auto stream = env.stub->Bidi(&ctx);
  for (int i = 0; i < 10; ++i) {
    Request req;
    req.set_text(absl::StrCat("m", i));
    CHECK_OR_FAIL(stream->Write(req), i);
    Response resp;
    CHECK_OR_FAIL(stream->Read(&resp), i);
    CHECK_OR_FAIL(resp.text() == absl::StrCat("m", i) && resp.index() == i, resp.text());
  }
  stream->WritesDone();
  Response extra;
  CHECK_OR_FAIL(!stream->Read(&extra), "a response after WritesDone");
  absl::Status s = stream->Finish();
  CHECK_OR_FAIL(s.ok(), s.ToString());
  return std::nullopt;
}

// 16 MiB through a bidi stream, read on another thread: flow control both ways.
Result BidiFlowControl(Env& env) {
  ClientContext ctx;
  auto stream = env.stub->Bidi(&ctx);
  constexpr int kCount = 64;
  std::string payload(256 * 1024, 'p');
  std::atomic<int> read{0};
  std::atomic<bool> sizes_ok{true};
  std::thread reader([&] {
    Response r;
    while (stream->Read(&r)) {
      if (r.payload().size() != payload.size()) sizes_ok = false;
      ++read;
    }
  });
  Request req;
  req.set_payload(payload);
  bool wrote = true;
  for (int i = 0; i < kCount && wrote; ++i) wrote = stream->Write(req);
  stream->WritesDone();
  reader.join();
  absl::Status s = stream->Finish();
  CHECK_OR_FAIL(wrote, "a Write failed");
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(read.load() == kCount && sizes_ok, read.load());
  return std::nullopt;
}

Result Unimplemented(Env& env) {
  auto channel = CreateChannel(env.address);
  CHECK_OR_FAIL(channel.ok(), channel.status().ToString());
  Response resp;
  ClientContext c1;
  MethodDescriptor unknown_method{"/ipcrpc.test.TestService/NoSuch", RpcKind::kUnary};
  absl::Status s = internal::BlockingUnaryCall(**channel, unknown_method, &c1, Request(), &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kUnimplemented, s.ToString());
  CHECK_OR_FAIL(s.message().find("NoSuch") != std::string::npos, s.ToString());
  ClientContext c2;
  MethodDescriptor unknown_service{"/ipcrpc.test.Nope/Echo", RpcKind::kUnary};
  s = internal::BlockingUnaryCall(**channel, unknown_service, &c2, Request(), &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kUnimplemented, s.ToString());
  return std::nullopt;
}

Result ClientDeadline(Env& env) {
  ClientContext ctx;
  ctx.set_timeout(absl::Milliseconds(200));
  Response resp;
  absl::Time start = absl::Now();
  absl::Status s = env.stub->WaitForCancel(&ctx, Request(), &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kDeadlineExceeded, s.ToString());
  CHECK_OR_FAIL(absl::Now() - start < absl::Seconds(5), "took ", absl::FormatDuration(absl::Now() - start));
  // The client cancels at its deadline, the server's deadline (receipt +
  // timeout) passes at about the same time: either may be seen first.
  std::string outcome = LastCancel(*env.stub);
  CHECK_OR_FAIL(outcome == "deadline" || outcome == "cancelled", outcome);
  return std::nullopt;
}

Result Cancel(Env& env) {
  ClientContext ctx;
  Response resp;
  absl::Status s;
  std::thread call([&] { s = env.stub->WaitForCancel(&ctx, Request(), &resp); });
  AwaitWaiting(*env.stub);
  ctx.TryCancel();
  call.join();
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kCancelled, s.ToString());
  std::string outcome = LastCancel(*env.stub);
  CHECK_OR_FAIL(outcome == "cancelled", outcome);
  return std::nullopt;
}

Result LargeMessages(Env& env) {
  // The largest request the server accepts (4 MiB serialized) and the reply
  // that is then too large for this client's default 4 MiB receive limit.
  Request req;
  req.set_payload(std::string((4 << 20) - 5, 'x'));
  CHECK_OR_FAIL(req.ByteSizeLong() == (4u << 20), req.ByteSizeLong());
  ClientContext c1;
  Response resp;
  absl::Status s = env.stub->Echo(&c1, req, &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kResourceExhausted, s.ToString());
  req.set_payload(std::string((4 << 20) - 64, 'y'));
  ClientContext c2;
  s = env.stub->Echo(&c2, req, &resp);
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(resp.payload() == req.payload(), "payload differs");
  // Over the server's limit, with a client that allows itself more.
  ChannelOptions big;
  big.max_send_message_size = 8 << 20;
  big.max_receive_message_size = 8 << 20;
  auto channel = CreateChannel(env.address, big);
  CHECK_OR_FAIL(channel.ok(), channel.status().ToString());
  auto stub = TestService::NewStub(*channel);
  req.set_payload(std::string((4 << 20) + 1, 'z'));
  ClientContext c3;
  s = stub->Echo(&c3, req, &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kResourceExhausted, s.ToString());
  ClientContext c4;
  req.set_payload("ok");
  s = stub->Echo(&c4, req, &resp);
  CHECK_OR_FAIL(s.ok(), "connection unusable after an oversized request: ", s.ToString());
  return std::nullopt;
}

// Blocks in a call until the test kills the server: UNAVAILABLE, quickly.
Result ServerKilled(Env& env) {
  ClientContext ctx;
  ctx.set_timeout(absl::Seconds(60));
  Response resp;
  std::printf("CALLING\n");
  std::fflush(stdout);
  absl::Time start = absl::Now();
  absl::Status s = env.stub->WaitForCancel(&ctx, Request(), &resp);
  CHECK_OR_FAIL(s.code() == absl::StatusCode::kUnavailable, s.ToString());
  CHECK_OR_FAIL(absl::Now() - start < absl::Seconds(30), absl::FormatDuration(absl::Now() - start));
  return std::nullopt;
}

// Calls until the server shuts down gracefully: in-flight call completes.
Result GracefulStop(Env& env) {
  ClientContext ctx;
  Request req;
  req.set_delay_ms(500);
  req.set_text("drained");
  Response resp;
  std::printf("CALLING\n");
  std::fflush(stdout);
  absl::Status s = env.stub->Echo(&ctx, req, &resp);
  CHECK_OR_FAIL(s.ok(), s.ToString());
  CHECK_OR_FAIL(resp.text() == "drained", resp.text());
  return std::nullopt;
}

// --- File descriptors (PROTOCOL.md §10) ---------------------------------------

// This process's open descriptors once the connection exists (a first call
// sets it up), for a leak check.
int FdBaseline(Env& env) {
  ClientContext ctx;
  FdReply reply;
  env.fd_stub->Hold(&ctx, FdRequest(), &reply).IgnoreError();
  return CountOpenFds();
}

// Takes the descriptor `field` names from the call and reads it.
std::string TakeAndRead(ClientContext* ctx, const FileDescriptor& field) {
  absl::StatusOr<ScopedFd> fd = TakeFd(ctx, field);
  if (!fd.ok()) return "<" + fd.status().ToString() + ">";
  return ReadAll(fd->get()).value_or("<unreadable>");
}

// The server opens descriptors (singular, nested, map value, repeated) and
// this client reads them; then a server stream of one per message.
Result FdOpen(Env& env) {
  const int before = FdBaseline(env);
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("memfd");
    req.set_content("py");
    req.set_count(5);
    req.set_spread(true);
    FdReply reply;
    absl::Status s = env.fd_stub->Open(&ctx, req, &reply);
    CHECK_OR_FAIL(s.ok(), s.ToString());
    CHECK_OR_FAIL(TakeAndRead(&ctx, reply.fd()) == "py0", "fd");
    CHECK_OR_FAIL(TakeAndRead(&ctx, reply.nested().fd()) == "py1", "nested");
    CHECK_OR_FAIL(reply.named().count("a") == 1, "named has no \"a\"");
    CHECK_OR_FAIL(TakeAndRead(&ctx, reply.named().at("a")) == "py2", "named");
    CHECK_OR_FAIL(reply.fds_size() == 2, reply.fds_size());
    CHECK_OR_FAIL(TakeAndRead(&ctx, reply.fds(0)) == "py3", "fds[0]");
    CHECK_OR_FAIL(TakeAndRead(&ctx, reply.fds(1)) == "py4", "fds[1]");
  }
  {
    ClientContext ctx;
    FdRequest req;
    req.set_kind("pipe");
    req.set_content("s");
    req.set_count(3);
    auto reader = env.fd_stub->OpenStream(&ctx, req);
    FdReply reply;
    int n = 0;
    while (reader->Read(&reply)) {
      CHECK_OR_FAIL(reply.index() == n, reply.index(), " != ", n);
      const std::string got = TakeAndRead(&ctx, reply.fd());
      CHECK_OR_FAIL(got == absl::StrCat("s", n), got);
      ++n;
    }
    absl::Status s = reader->Finish();
    CHECK_OR_FAIL(s.ok() && n == 3, s.ToString(), " after ", n, " messages");
  }
  const int after = CountOpenFds();
  CHECK_OR_FAIL(after == before, "descriptors open: ", before, " before, ", after, " after");
  return std::nullopt;
}

// This client sends descriptors of every kind in every field shape; the
// server reads them (Read), one per message of a client stream
// (ReadStream), and turns each into a new one in a bidi stream.
Result FdRead(Env& env) {
  const int before = FdBaseline(env);
  {
    std::vector<ScopedFd> mine;
    for (const auto& [kind, content] :
         std::vector<std::pair<std::string, std::string>>{
             {"file", "one"}, {"pipe", "two"}, {"memfd", "three"}, {"memfd", "four"},
             {"file", "five"}}) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent(kind, content);
      CHECK_OR_FAIL(fd.ok(), fd.status().ToString());
      mine.push_back(std::move(*fd));
    }
    ClientContext ctx;
    FdRequest req;
    SetFd(req.mutable_fd(), mine[0].get());
    SetFd(req.add_fds(), mine[1].get());
    SetFd(req.add_fds(), mine[2].get());
    SetFd(req.mutable_nested()->mutable_fd(), mine[3].get());
    SetFd(&(*req.mutable_named())["k"], mine[4].get());
    FdReply reply;
    absl::Status s = env.fd_stub->Read(&ctx, req, &reply);
    CHECK_OR_FAIL(s.ok(), s.ToString());
    CHECK_OR_FAIL(reply.content() == "|one|two|three|four|five", reply.content());
  }
  {
    ClientContext ctx;
    FdReply reply;
    auto writer = env.fd_stub->ReadStream(&ctx, &reply);
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent("memfd", absl::StrCat("c", i));
      CHECK_OR_FAIL(fd.ok(), fd.status().ToString());
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      CHECK_OR_FAIL(writer->Write(req), "write ", i);
    }
    writer->WritesDone();
    absl::Status s = writer->Finish();
    CHECK_OR_FAIL(s.ok(), s.ToString());
    CHECK_OR_FAIL(reply.content() == "|c0|c1|c2", reply.content());
  }
  {
    ClientContext ctx;
    auto stream = env.fd_stub->Bidi(&ctx);
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<ScopedFd> fd = OpenWithContent("pipe", absl::StrCat("b", i));
      CHECK_OR_FAIL(fd.ok(), fd.status().ToString());
      FdRequest req;
      SetFd(req.mutable_fd(), fd->get());
      CHECK_OR_FAIL(stream->Write(req), "write ", i);
      FdReply reply;
      CHECK_OR_FAIL(stream->Read(&reply), "read ", i);
      const std::string got = TakeAndRead(&ctx, reply.fd());
      CHECK_OR_FAIL(got == absl::StrCat("b", i), got);
    }
    stream->WritesDone();
    absl::Status s = stream->Finish();
    CHECK_OR_FAIL(s.ok(), s.ToString());
  }
  const int after = CountOpenFds();
  CHECK_OR_FAIL(after == before, "descriptors open: ", before, " before, ", after, " after");
  return std::nullopt;
}

const std::map<std::string, std::function<Result(Env&)>>& Cases() {
  static const auto* cases = new std::map<std::string, std::function<Result(Env&)>>{
      {"unary", Unary},
      {"metadata", Metadata},
      {"every_error_code", EveryErrorCode},
      {"server_stream", ServerStream},
      {"server_stream_error", ServerStreamError},
      {"client_stream", ClientStream},
      {"bidi", Bidi},
      {"bidi_flow_control", BidiFlowControl},
      {"unimplemented", Unimplemented},
      {"client_deadline", ClientDeadline},
      {"cancel", Cancel},
      {"large_messages", LargeMessages},
      {"server_killed", ServerKilled},
      {"graceful_stop", GracefulStop},
      {"fd_open", FdOpen},
      {"fd_read", FdRead},
  };
  return *cases;
}

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: interop_client ADDRESS CASE [SERVER_PID]\n");
    return 2;
  }
  Env env;
  env.address = argv[1];
  std::string name = argv[2];
  if (argc > 3 && !absl::SimpleAtoi(argv[3], &env.server_pid)) return 2;
  auto it = Cases().find(name);
  if (it == Cases().end()) {
    std::fprintf(stderr, "unknown case %s\n", name.c_str());
    return 2;
  }
  ChannelOptions options;
  if (const char* c = std::getenv("INTEROP_COMPRESSION"); c != nullptr && std::string(c) == "gzip") {
    options.default_compression_algorithm = CompressionAlgorithm::kGzip;
  }
  auto channel = CreateChannel(env.address, options);
  if (!channel.ok()) {
    std::printf("FAIL %s: %s\n", name.c_str(), channel.status().ToString().c_str());
    return 1;
  }
  auto stub = TestService::NewStub(*channel);
  env.stub = stub.get();
  auto fd_stub = FdService::NewStub(*channel);
  env.fd_stub = fd_stub.get();
  Result r = it->second(env);
  if (r.has_value()) {
    std::printf("FAIL %s: %s\n", name.c_str(), r->message.c_str());
    return 1;
  }
  std::printf("PASS %s\n", name.c_str());
  return 0;
}

}  // namespace
}  // namespace ipcrpc::test

int main(int argc, char** argv) { return ipcrpc::test::Main(argc, argv); }
