// The raw IPC floor: a client and a server process doing a plain ping-pong
// (and a one-way stream) over one mechanism with no framework around it.
//
//   raw_bench --mechanism=unix [--modes=latency,stream] [--client_cpu=0 --server_cpu=1]
//   raw_bench --list
//
// The process forks: the parent is the client (it measures and prints JSON
// lines, bench/harness.h), the child the server. Before each batch of round
// trips (or each stream) the client sends a 16-byte Command saying what
// follows, untimed, so a timed round trip is exactly one payload each way:
// the client's send and receive, the server's receive and send — the least
// any framework on the same mechanism could do. In a stream the server sends
// message by message and the client reads whatever has arrived, up to 256 KiB
// at a time.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "bench/harness.h"
#include "bench/raw/cleanup.h"
#include "bench/raw/endpoint.h"

ABSL_FLAG(std::string, mechanism, "unix", "see --list");
ABSL_FLAG(bool, list, false, "print the mechanisms (one JSON line each) and exit");
ABSL_FLAG(std::string, modes, "latency,stream", "latency and/or stream");
ABSL_FLAG(int, client_cpu, -1, "pin the client process to this CPU (-1: do not pin)");
ABSL_FLAG(int, server_cpu, -1, "pin the server process to this CPU (-1: do not pin)");
ABSL_FLAG(std::string, sizes, "64,4096,65536,1048576", "latency: payload sizes, bytes");
ABSL_FLAG(int, warmup, 200, "latency: round trips before recording");
ABSL_FLAG(int, iterations, 20000, "latency: most round trips recorded per size");
ABSL_FLAG(int, max_ms, 1000, "latency: time budget per size, milliseconds");
ABSL_FLAG(std::string, stream_sizes, "4096,1048576", "stream: message sizes, bytes");
ABSL_FLAG(int, stream_ms, 500, "stream: length of the timed stream, milliseconds");
ABSL_FLAG(int, stream_warmup, 20, "stream: messages in the untimed first stream");
ABSL_FLAG(int, spin_us, 20, "shm-futex-spin: spin this long before sleeping");
ABSL_FLAG(int, ring_kib, 1024, "shm-*: ring capacity per direction, KiB (power of two)");

namespace {

// The stream receiver's buffer (at least one message).
constexpr size_t kStreamBufferBytes = 256 << 10;

enum Op : uint32_t { kEcho = 1, kStream = 2, kQuit = 3 };

struct Command {
  uint32_t op;
  uint32_t size;   // payload bytes per message
  uint64_t count;  // round trips (kEcho) or messages (kStream)
};
static_assert(sizeof(Command) == 16, "Command is a fixed 16-byte wire struct");

absl::Status SendCommand(raw::Endpoint& end, Op op, size_t size, int64_t count) {
  Command command{op, static_cast<uint32_t>(size), static_cast<uint64_t>(count)};
  return end.Send(reinterpret_cast<const char*>(&command), sizeof(command));
}

// The child: answers Commands until kQuit or until the client is gone.
absl::Status Serve(raw::Endpoint& end) {
  std::vector<char> buffer;
  for (;;) {
    Command command;
    absl::Status status = end.Receive(reinterpret_cast<char*>(&command), sizeof(command));
    if (absl::IsUnavailable(status)) return absl::OkStatus();  // the client closed
    IPCRPC_RETURN_IF_ERROR(status);
    if (command.op == kQuit) return absl::OkStatus();
    if (buffer.size() < command.size) buffer.resize(command.size, '\x5a');
    for (uint64_t i = 0; i < command.count; ++i) {
      if (command.op == kEcho) {
        IPCRPC_RETURN_IF_ERROR(end.Receive(buffer.data(), command.size));
      } else if (command.op != kStream) {
        return absl::DataLossError(absl::StrCat("unknown command ", command.op));
      }
      IPCRPC_RETURN_IF_ERROR(end.Send(buffer.data(), command.size));
    }
  }
}

bench::JsonLine Line(absl::string_view bench, absl::string_view mechanism) {
  bench::JsonLine line;
  line.Add("bench", bench).Add("system", "raw").Add("transport", mechanism);
  return line;
}

absl::Status MeasureLatency(raw::Endpoint& end, absl::string_view mechanism) {
  IPCRPC_ASSIGN_OR_RETURN(std::vector<size_t> sizes, bench::ParseSizes(absl::GetFlag(FLAGS_sizes)));
  bench::LatencyOptions options;
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.iterations = absl::GetFlag(FLAGS_iterations);
  options.max_time = absl::Milliseconds(absl::GetFlag(FLAGS_max_ms));
  for (size_t size : sizes) {
    std::string payload = bench::MakePayload(size);
    std::string reply(size, '\0');
    IPCRPC_ASSIGN_OR_RETURN(
        bench::LatencySummary summary,
        bench::MeasureLatency(
            options,
            [&] {
              IPCRPC_RETURN_IF_ERROR(end.Send(payload.data(), size));
              return end.Receive(reply.data(), size);
            },
            [&](int n) { return SendCommand(end, kEcho, size, n); }));
    if (reply != payload) return absl::DataLossError("the echo differs from what was sent");
    Line("latency", mechanism).Add("size", size).Add(summary).Print();
  }
  return absl::OkStatus();
}

absl::Status MeasureStream(raw::Endpoint& end, absl::string_view mechanism) {
  IPCRPC_ASSIGN_OR_RETURN(std::vector<size_t> sizes,
                          bench::ParseSizes(absl::GetFlag(FLAGS_stream_sizes)));
  bench::StreamOptions options;
  options.target_time = absl::Milliseconds(absl::GetFlag(FLAGS_stream_ms));
  options.min_messages = absl::GetFlag(FLAGS_stream_warmup);
  for (size_t size : sizes) {
    std::string buffer(std::max<size_t>(size, kStreamBufferBytes), '\0');
    IPCRPC_ASSIGN_OR_RETURN(
        bench::StreamSummary summary,
        bench::MeasureStream(options, size, [&](int n) {
          IPCRPC_RETURN_IF_ERROR(SendCommand(end, kStream, size, n));
          // Read whatever has arrived, up to a buffer's worth at a time, as a
          // hand-written receiver of a stream would.
          for (uint64_t left = uint64_t{size} * n; left > 0;) {
            IPCRPC_ASSIGN_OR_RETURN(size_t got,
                                    end.ReceiveSome(buffer.data(), std::min<uint64_t>(left, buffer.size())));
            left -= got;
          }
          return absl::OkStatus();
        }));
    Line("stream", mechanism).Add("size", size).Add(summary).Print();
  }
  return absl::OkStatus();
}

[[noreturn]] void RunServer(raw::EndpointPair& pair, pid_t parent) {
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) signal(s, SIG_DFL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the client
  if (getppid() != parent) _exit(1);
  absl::Status status = bench::PinToCpu(absl::GetFlag(FLAGS_server_cpu));
  if (status.ok()) {
    absl::StatusOr<std::unique_ptr<raw::Endpoint>> end = pair.ServerEnd();
    status = end.ok() ? Serve(**end) : end.status();
  }
  if (!status.ok()) std::fprintf(stderr, "raw_bench server: %s\n", status.ToString().c_str());
  _exit(status.ok() ? 0 : 1);  // no destructors: the parent owns the mechanism
}

absl::Status Run() {
  std::string mechanism = absl::GetFlag(FLAGS_mechanism);
  const raw::Mechanism* found = nullptr;
  for (const raw::Mechanism& m : raw::Mechanisms()) {
    if (m.name == mechanism) found = &m;
  }
  if (found == nullptr) return absl::InvalidArgumentError("unknown --mechanism (see --list)");
  int client_cpu = absl::GetFlag(FLAGS_client_cpu);
  if (found->spins_only && client_cpu >= 0 && client_cpu == absl::GetFlag(FLAGS_server_cpu)) {
    Line("skipped", mechanism)
        .Add("reason", "both processes on one CPU: a pure spinner waits out its time slice")
        .Print();
    return absl::OkStatus();
  }
  std::vector<std::string> modes = absl::StrSplit(absl::GetFlag(FLAGS_modes), ',');
  for (const std::string& mode : modes) {
    if (mode != "latency" && mode != "stream") {
      return absl::InvalidArgumentError(absl::StrCat("unknown mode \"", mode, "\""));
    }
  }

  raw::cleanup::InstallHandlers();
  raw::MechanismOptions options;
  options.spin_ns = int64_t{absl::GetFlag(FLAGS_spin_us)} * 1000;
  options.ring_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_ring_kib)) << 10;
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<raw::EndpointPair> pair,
                          raw::MakeEndpointPair(mechanism, options));
  std::fflush(stdout);
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (child == 0) RunServer(*pair, parent);
  raw::cleanup::SetChild(child);

  absl::Status status = bench::PinToCpu(client_cpu);
  if (status.ok()) {
    absl::StatusOr<std::unique_ptr<raw::Endpoint>> end = pair->ClientEnd();
    status = end.status();
    for (size_t i = 0; status.ok() && i < modes.size(); ++i) {
      status = modes[i] == "latency" ? MeasureLatency(**end, mechanism)
                                     : MeasureStream(**end, mechanism);
    }
    if (status.ok()) status = SendCommand(**end, kQuit, 0, 0);
  }
  if (!status.ok()) kill(child, SIGKILL);
  int wait_status = 0;
  while (waitpid(child, &wait_status, 0) < 0 && errno == EINTR) {
  }
  raw::cleanup::SetChild(0);
  if (status.ok() && !(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)) {
    status = absl::InternalError("the server process failed (see stderr)");
  }
  return status;  // `pair` goes now: FIFO files and queues are removed
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_list)) {
    for (const raw::Mechanism& m : raw::Mechanisms()) {
      Line("mechanism", m.name)
          .Add("description", m.description)
          .Add("spins_only", m.spins_only ? 1 : 0)
          .Print();
    }
    return 0;
  }
  absl::Status status = Run();
  if (!status.ok()) return bench::ReportFailure("raw_bench", status);
  return 0;
}
