// A unary call carrying one file descriptor against the same call without
// one, over the unix transport (a spawned worker's socketpair), in one run
// (issue 13's target: <= 1.5x). Three variants, measured in alternating
// rounds so drift hits them alike:
//   none      64-byte request and reply, no descriptor
//   request   the request carries a descriptor (the server takes and closes it)
//   reply     the reply carries one (the client takes and closes it)
// Prints one JSON line per variant and round, then a summary line with the
// median p50 of each variant and the ratios.
//
//   fd_passing_bench [--iterations=N] [--rounds=N] [--cpu_client=C --cpu_server=S]
//   (fd_passing_bench --worker: the server, started by the benchmark itself)

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "bench/fd_bench.ipcrpc.pb.h"
#include "bench/harness.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"

namespace {

class FdBenchImpl final : public ipcrpc_bench::FdBench::Service {
 public:
  FdBenchImpl() : memfd_(::memfd_create("fd-bench", MFD_CLOEXEC)) {}
  absl::Status Echo(ipcrpc::ServerContext* ctx, const ipcrpc_bench::FdPayload* req,
                    ipcrpc_bench::FdPayload* reply) override {
    reply->set_data(req->data());
    if (req->has_fd()) {
      absl::StatusOr<ipcrpc::ScopedFd> fd = ipcrpc::TakeFd(ctx, req->fd());
      if (!fd.ok()) return fd.status();
    }  // closed here
    if (req->want_fd()) ipcrpc::SetFd(reply->mutable_fd(), memfd_.get());  // stays open
    return absl::OkStatus();
  }

 private:
  ipcrpc::ScopedFd memfd_;
};

int RunWorker() {
  auto transport = ipcrpc::TakeInheritedTransport();
  if (!transport.ok()) return bench::ReportFailure("fd_passing_bench --worker", transport.status());
  FdBenchImpl service;
  ipcrpc::ServerBuilder builder;
  builder.AddTransport(std::move(*transport)).RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server.ok()) return bench::ReportFailure("fd_passing_bench --worker", server.status());
  (*server)->Wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 20000, rounds = 3, cpu_client = -1, cpu_server = -1;
  bool worker = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--worker") {
      worker = true;
    } else if (absl::ConsumePrefix(&arg, "--iterations=")) {
      if (!absl::SimpleAtoi(arg, &iterations)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--rounds=")) {
      if (!absl::SimpleAtoi(arg, &rounds)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--cpu_client=")) {
      if (!absl::SimpleAtoi(arg, &cpu_client)) return 2;
    } else if (absl::ConsumePrefix(&arg, "--cpu_server=")) {
      if (!absl::SimpleAtoi(arg, &cpu_server)) return 2;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (worker) {
    if (absl::Status s = bench::PinToCpu(cpu_server); !s.ok()) {
      return bench::ReportFailure("fd_passing_bench --worker", s);
    }
    return RunWorker();
  }
  std::vector<std::string> worker_argv = {"/proc/self/exe", "--worker",
                                          "--cpu_server=" + std::to_string(cpu_server)};
  // posix_spawn needs a real path: resolve /proc/self/exe first.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return bench::ReportFailure("fd_passing_bench", absl::InternalError("readlink"));
  worker_argv[0] = std::string(self, static_cast<size_t>(n));
  auto spawned = ipcrpc::WorkerProcess::Spawn(worker_argv);
  if (!spawned.ok()) return bench::ReportFailure("fd_passing_bench", spawned.status());
  if (absl::Status s = bench::PinToCpu(cpu_client); !s.ok()) {
    return bench::ReportFailure("fd_passing_bench", s);
  }
  ipcrpc_bench::FdBench::Stub stub(ipcrpc::CreateChannelFromTransport(spawned->TakeTransport()));
  ipcrpc::ScopedFd memfd(::memfd_create("fd-bench-client", MFD_CLOEXEC));
  const std::string data = bench::MakePayload(64);

  auto call = [&](const std::string& variant) -> absl::Status {
    ipcrpc::ClientContext ctx;
    ipcrpc_bench::FdPayload req, reply;
    req.set_data(data);
    if (variant == "request") ipcrpc::SetFd(req.mutable_fd(), memfd.get());
    if (variant == "reply") req.set_want_fd(true);
    absl::Status s = stub.Echo(&ctx, req, &reply);
    if (!s.ok()) return s;
    if (variant == "reply") {
      absl::StatusOr<ipcrpc::ScopedFd> fd = ipcrpc::TakeFd(&ctx, reply.fd());
      if (!fd.ok()) return fd.status();
    }
    return absl::OkStatus();
  };

  const std::vector<std::string> variants = {"none", "request", "reply"};
  std::vector<std::vector<double>> p50s(variants.size());
  bench::LatencyOptions options;
  options.iterations = iterations;
  options.max_time = absl::Seconds(2);
  for (int round = 0; round < rounds; ++round) {
    for (size_t v = 0; v < variants.size(); ++v) {
      auto summary = bench::MeasureLatency(options, [&] { return call(variants[v]); });
      if (!summary.ok()) return bench::ReportFailure("fd_passing_bench", summary.status());
      p50s[v].push_back(summary->p50_us);
      bench::JsonLine()
          .Add("bench", "fd_passing")
          .Add("transport", "unix (socketpair)")
          .Add("fd", variants[v])
          .Add("round", round)
          .Add(*summary)
          .Print();
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double none = median(p50s[0]), request = median(p50s[1]), reply = median(p50s[2]);
  bench::JsonLine()
      .Add("bench", "fd_passing_summary")
      .Add("p50_us_none", none)
      .Add("p50_us_fd_in_request", request)
      .Add("p50_us_fd_in_reply", reply)
      .Add("ratio_request", request / none)
      .Add("ratio_reply", reply / none)
      .Print();
  return 0;
}
