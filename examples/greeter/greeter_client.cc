// Calls the example Greeter with every kind of RPC and measures round trips.
//
//   greeter_client TARGET [--transport=NAME] [--calls=N] [--compare_transports]
//                         [--spawn_worker=PATH]
//
// TARGET is an address (unix:/tmp/greeter.sock, shm:/tmp/greeter.sock, ...)
// or a name from the config file. The transport can be changed without a
// rebuild: --transport=NAME, IPCRPC_TRANSPORT=NAME, or IPCRPC_CONFIG=file
// (see runtime/config.h). --compare_transports measures unary round trips
// over every transport of this build against the same server, one line each.
// --spawn_worker starts PATH (greeter_server) as a worker process on an
// inherited socketpair and calls it too.

#include <algorithm>
#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "connect/address.h"
#include "examples/greeter/greeter.ipcrpc.pb.h"
#include "runtime/ipcrpc.h"

namespace {

using demo::Greeter;
using demo::HelloReply;
using demo::HelloRequest;

absl::Status RunAllKinds(Greeter::Stub& stub) {
  {  // Unary, with metadata coming back.
    ipcrpc::ClientContext ctx;
    ctx.set_timeout(absl::Seconds(5));
    HelloRequest request;
    request.set_name("ipcrpc");
    HelloReply reply;
    IPCRPC_RETURN_IF_ERROR(stub.SayHello(&ctx, request, &reply));
    auto pid = ctx.GetServerTrailingMetadata().find("served-by-pid");
    std::printf("unary            SayHello -> \"%s\" (served by pid %s over %s)\n",
                reply.message().c_str(),
                pid == ctx.GetServerTrailingMetadata().end() ? "?" : pid->second.c_str(),
                ctx.transport().c_str());
  }
  {  // Server streaming.
    ipcrpc::ClientContext ctx;
    HelloRequest request;
    request.set_name("world");
    auto reader = stub.LotsOfReplies(&ctx, request);
    HelloReply reply;
    std::string all;
    while (reader->Read(&reply)) all += " \"" + reply.message() + "\"";
    IPCRPC_RETURN_IF_ERROR(reader->Finish());
    std::printf("server-streaming LotsOfReplies ->%s\n", all.c_str());
  }
  {  // Client streaming.
    ipcrpc::ClientContext ctx;
    HelloReply reply;
    auto writer = stub.LotsOfGreetings(&ctx, &reply);
    for (const char* name : {"Ada", "Grace", "Linus"}) {
      HelloRequest request;
      request.set_name(name);
      if (!writer->Write(request)) break;
    }
    writer->WritesDone();
    IPCRPC_RETURN_IF_ERROR(writer->Finish());
    std::printf("client-streaming LotsOfGreetings -> \"%s\"\n", reply.message().c_str());
  }
  {  // Bidirectional streaming.
    ipcrpc::ClientContext ctx;
    auto chat = stub.Chat(&ctx);
    for (const char* line : {"hi", "how fast is this?"}) {
      HelloRequest request;
      request.set_name(line);
      HelloReply reply;
      if (!chat->Write(request) || !chat->Read(&reply)) break;
      std::printf("bidi-streaming   Chat \"%s\" -> \"%s\"\n", line, reply.message().c_str());
    }
    chat->WritesDone();
    IPCRPC_RETURN_IF_ERROR(chat->Finish());
  }
  {  // Asynchronous unary.
    ipcrpc::ClientContext ctx;
    HelloRequest request;
    request.set_name("async");
    HelloReply reply;
    std::promise<absl::Status> done;  // the callback runs on another thread
    std::future<absl::Status> status = done.get_future();
    stub.async()->SayHello(&ctx, &request, &reply, [&](absl::Status s) { done.set_value(s); });
    IPCRPC_RETURN_IF_ERROR(status.get());
    std::printf("async unary      async()->SayHello -> \"%s\"\n", reply.message().c_str());
  }
  {  // An error status travels like gRPC's.
    ipcrpc::ClientContext ctx;
    HelloReply reply;
    absl::Status status = stub.SayHello(&ctx, HelloRequest(), &reply);
    std::printf("error path       SayHello(\"\") -> %s\n", status.ToString().c_str());
  }
  return absl::OkStatus();
}

absl::Status MeasureRoundTrips(Greeter::Stub& stub, int calls, absl::string_view label) {
  HelloRequest request;
  request.set_name("latency");
  HelloReply reply;
  std::vector<absl::Duration> samples;
  samples.reserve(calls);
  for (int i = 0; i < calls + 100; ++i) {
    ipcrpc::ClientContext ctx;
    absl::Time start = absl::Now();
    IPCRPC_RETURN_IF_ERROR(stub.SayHello(&ctx, request, &reply));
    if (i >= 100) samples.push_back(absl::Now() - start);  // first 100 warm up
  }
  std::sort(samples.begin(), samples.end());
  auto us = [](absl::Duration d) { return absl::ToDoubleMicroseconds(d); };
  std::printf("round trip       %-8s %d unary calls: p50 %7.1f us, p99 %7.1f us, min %6.1f us\n",
              std::string(label).c_str(), calls, us(samples[samples.size() / 2]),
              us(samples[samples.size() * 99 / 100]), us(samples.front()));
  return absl::OkStatus();
}

absl::Status CallWorker(const std::string& path) {
  IPCRPC_ASSIGN_OR_RETURN(ipcrpc::WorkerProcess worker, ipcrpc::WorkerProcess::Spawn({path}));
  // Move the socketpair connection to shared memory; the socketpair stays
  // open underneath as the liveness channel.
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::Transport> transport,
                          ipcrpc::UpgradeConnection(worker.TakeSocket(), "shm"));
  auto stub = Greeter::NewStub(ipcrpc::CreateChannelFromTransport(std::move(transport)));
  ipcrpc::ClientContext ctx;
  HelloRequest request;
  request.set_name("worker");
  HelloReply reply;
  IPCRPC_RETURN_IF_ERROR(stub->SayHello(&ctx, request, &reply));
  std::printf("spawned worker   pid %d over %s -> \"%s\"\n", worker.pid(),
              ctx.transport().c_str(), reply.message().c_str());
  stub.reset();  // closing the channel lets the worker exit
  IPCRPC_ASSIGN_OR_RETURN(int status, worker.Wait(absl::Seconds(5)));
  (void)status;
  return absl::OkStatus();
}

// One line per transport, all against the server behind `target`.
absl::Status CompareTransports(absl::string_view target, int calls) {
  absl::string_view socket = target.substr(target.find(':') + 1);
  for (const std::string& transport : ipcrpc::KnownTransports()) {
    if (transport == "auto") continue;
    std::string address = absl::StrCat(transport, ":", socket);
    if (!ipcrpc::MakeConnector(address).ok()) continue;  // not in this build
    // The environment must not override what is being compared.
    IPCRPC_ASSIGN_OR_RETURN(std::shared_ptr<ipcrpc::Channel> channel,
                            ipcrpc::CreateChannel(address, {}, ipcrpc::config::Config()));
    Greeter::Stub stub(channel);
    absl::Status status = MeasureRoundTrips(stub, calls, transport);
    if (!status.ok()) {
      std::printf("round trip       %-8s failed: %s\n", transport.c_str(),
                  status.ToString().c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status Run(int argc, char** argv) {
  if (argc < 2) {
    return absl::InvalidArgumentError(
        "usage: greeter_client TARGET [--transport=NAME] [--calls=N] [--compare_transports] "
        "[--spawn_worker=PATH]");
  }
  int calls = 2000;
  std::string worker;
  std::string transport;
  bool compare = false;
  for (int i = 2; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--transport=")) {
      transport = std::string(arg);
    } else if (arg == "--compare_transports") {
      compare = true;
    } else if (absl::ConsumePrefix(&arg, "--calls=")) {
      if (!absl::SimpleAtoi(arg, &calls) || calls < 1) {
        return absl::InvalidArgumentError("--calls wants a positive number");
      }
    } else if (absl::ConsumePrefix(&arg, "--spawn_worker=")) {
      worker = std::string(arg);
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unknown argument %s", argv[i]));
    }
  }
  std::string target = argv[1];
  if (!transport.empty()) {  // --transport replaces the address's scheme
    IPCRPC_ASSIGN_OR_RETURN(ipcrpc::ParsedAddress parsed, ipcrpc::ParseAddress(target));
    (void)parsed;
    target = absl::StrCat(transport, target.substr(target.find(':')));
  }
  IPCRPC_ASSIGN_OR_RETURN(std::shared_ptr<ipcrpc::Channel> channel,
                          ipcrpc::CreateChannel(target));
  std::printf("channel          %s\n", channel->target().c_str());
  Greeter::Stub stub(channel);
  IPCRPC_RETURN_IF_ERROR(RunAllKinds(stub));
  if (compare) {
    IPCRPC_RETURN_IF_ERROR(CompareTransports(target, calls));
  } else {
    IPCRPC_RETURN_IF_ERROR(MeasureRoundTrips(stub, calls, "this"));
  }
  if (!worker.empty()) IPCRPC_RETURN_IF_ERROR(CallWorker(worker));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::Status status = Run(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "greeter_client: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
