// Shared buffers against the copy path (issue 13): one unary round trip that
// carries a request of S bytes in and a response of S bytes out, cross-CPU,
// over the shm transport, for S from 64 KiB to 64 MiB (and 1 GiB with
// --sizes), both variants in the same run, in alternating rounds:
//   shared  the client allocates an S-byte SharedBuffer (AllocateSharedBuffer),
//           sends it; the server allocates an S-byte one for the reply; the
//           client takes the view and reads its first byte. Neither side
//           fills or reads the payload (that is the application's work, the
//           same with or without ipcrpc): what is timed is what the framework
//           adds to move S bytes each way.
//   copy    the same S bytes as a `bytes` field each way (the request built
//           once, outside the timing; the server echoes it).
// Prints one JSON line per variant, size and round, then one summary line
// per size with the median p50s and copy/shared.
//
//   shared_buffer_bench [--sizes=65536,67108864,1073741824 (bytes)] [--rounds=N] [--cpu_client=C --cpu_server=S]
//                       [--max_seconds=T]   (per variant, size and round)

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/harness.h"
#include "runtime/ipcrpc.h"
#include "runtime/shared_buffer.h"
#include "tests/e2e/shared_buffer_service.ipcrpc.pb.h"
#include "tests/e2e/shared_buffer_service_impl.h"

namespace {

constexpr uint64_t kMaxMessage = uint64_t{1} << 30;  // the copy path's 64 MiB and beyond

int RunServer(const std::string& address, int cpu) {
  if (absl::Status s = bench::PinToCpu(cpu); !s.ok()) {
    return bench::ReportFailure("shared_buffer_bench server", s);
  }
  ipcrpc::test::SharedBufferServiceImpl service;
  ipcrpc::ServerOptions options;
  options.max_message_size = kMaxMessage;
  options.shared_buffer_pool_bytes = uint64_t{4} << 30;
  ipcrpc::ServerBuilder builder;
  builder.SetOptions(options).AddListeningAddress(address).RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server.ok()) return bench::ReportFailure("shared_buffer_bench server", server.status());
  (*server)->Wait();
  return 0;
}

std::string SizeName(uint64_t size) {
  if (size >= (1u << 30) && size % (1u << 30) == 0) return absl::StrCat(size >> 30, "GiB");
  if (size >= (1u << 20) && size % (1u << 20) == 0) return absl::StrCat(size >> 20, "MiB");
  return absl::StrCat(size >> 10, "KiB");
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 3, cpu_client = 0, cpu_server = 1;
  double max_seconds = 1.5;
  std::string sizes_arg = "65536,262144,1048576,4194304,16777216,67108864";
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--sizes=")) {
      sizes_arg = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--rounds=")) {
      if (!absl::SimpleAtoi(arg, &rounds)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--cpu_client=")) {
      if (!absl::SimpleAtoi(arg, &cpu_client)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--cpu_server=")) {
      if (!absl::SimpleAtoi(arg, &cpu_server)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--max_seconds=")) {
      if (!absl::SimpleAtod(arg, &max_seconds)) return 2;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<std::vector<size_t>> sizes = bench::ParseSizes(sizes_arg);
  if (!sizes.ok()) return bench::ReportFailure("shared_buffer_bench", sizes.status());

  // The server: a child process on a socket in a private directory, forked
  // before this process starts any thread.
  char dir_template[] = "/tmp/ipcrpc-shbuf-bench-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    return bench::ReportFailure("shared_buffer_bench", absl::InternalError("mkdtemp"));
  }
  const std::string socket = absl::StrCat(dir_template, "/server.sock");
  const pid_t server_pid = ::fork();
  if (server_pid == 0) ::_exit(RunServer("unix:" + socket, cpu_server));
  struct Cleanup {
    pid_t pid;
    std::string dir, socket;
    ~Cleanup() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::unlink(socket.c_str());
      ::rmdir(dir.c_str());
    }
  } cleanup{server_pid, dir_template, socket};
  if (absl::Status s = bench::PinToCpu(cpu_client); !s.ok()) {
    return bench::ReportFailure("shared_buffer_bench", s);
  }

  ipcrpc::ChannelOptions options;
  options.max_send_message_size = kMaxMessage;
  options.max_receive_message_size = kMaxMessage;
  options.shared_buffer_pool_bytes = uint64_t{4} << 30;
  auto channel = ipcrpc::CreateChannel("shm:" + socket, options);
  if (!channel.ok()) return bench::ReportFailure("shared_buffer_bench", channel.status());
  auto stub = ipcrpc::test::SharedBufferService::NewStub(*channel);
  {  // wait for the server to listen
    ipcrpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(absl::Now() + absl::Seconds(20));
    ipcrpc::test::BufferReply reply;
    absl::Status s = stub->CopyExchange(&ctx, {}, &reply);
    if (!s.ok()) return bench::ReportFailure("shared_buffer_bench", s);
  }

  for (size_t size : *sizes) {
    const bool copy_feasible = size <= (uint64_t{256} << 20);
    std::string payload = copy_feasible ? bench::MakePayload(size) : std::string();
    ipcrpc::test::BufferRequest copy_request;
    copy_request.set_data(std::move(payload));

    auto shared_call = [&]() -> absl::Status {
      absl::StatusOr<ipcrpc::SharedBufferWriter> w = ipcrpc::AllocateSharedBuffer(**channel, size);
      if (!w.ok()) return w.status();
      ipcrpc::ClientContext ctx;
      ipcrpc::test::BufferRequest req;
      ipcrpc::SetSharedBuffer(req.mutable_buffer(), *w);
      req.set_size(size);
      req.set_no_read(true);
      ipcrpc::test::BufferReply reply;
      if (absl::Status s = stub->Exchange(&ctx, req, &reply); !s.ok()) return s;
      absl::StatusOr<ipcrpc::SharedBufferView> v = ipcrpc::TakeSharedBuffer(&ctx, reply.buffer());
      if (!v.ok()) return v.status();
      if (v->size() != size) return absl::InternalError("wrong size");
      volatile uint8_t first = v->data()[0];
      (void)first;
      return absl::OkStatus();
    };
    auto copy_call = [&]() -> absl::Status {
      ipcrpc::ClientContext ctx;
      ipcrpc::test::BufferReply reply;
      if (absl::Status s = stub->CopyExchange(&ctx, copy_request, &reply); !s.ok()) return s;
      if (reply.data().size() != size) return absl::InternalError("wrong size");
      return absl::OkStatus();
    };

    std::vector<double> shared_p50, copy_p50;
    bench::LatencyOptions latency;
    latency.warmup = size >= (uint64_t{64} << 20) ? 3 : 50;
    latency.iterations = 20000;
    latency.batch = 1;
    latency.max_time = absl::Seconds(max_seconds);
    for (int round = 0; round < rounds; ++round) {
      for (const char* variant : {"shared", "copy"}) {
        const bool shared = std::string(variant) == "shared";
        if (!shared && !copy_feasible) continue;
        auto summary = bench::MeasureLatency(latency, shared ? std::function<absl::Status()>(shared_call)
                                                             : std::function<absl::Status()>(copy_call));
        if (!summary.ok()) return bench::ReportFailure("shared_buffer_bench", summary.status());
        (shared ? shared_p50 : copy_p50).push_back(summary->p50_us);
        bench::JsonLine()
            .Add("bench", "shared_buffer")
            .Add("transport", "shm")
            .Add("variant", variant)
            .Add("size", SizeName(size))
            .Add("bytes", size)
            .Add("round", round)
            .Add(*summary)
            .Print();
      }
    }
    auto median = [](std::vector<double> v) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    bench::JsonLine line;
    line.Add("bench", "shared_buffer_summary")
        .Add("size", SizeName(size))
        .Add("shared_p50_us", median(shared_p50));
    if (!copy_p50.empty()) {
      line.Add("copy_p50_us", median(copy_p50))
          .Add("copy_over_shared", median(copy_p50) / median(shared_p50));
    }
    line.Print();
  }
  return 0;
}
