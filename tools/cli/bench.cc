// bench: N concurrent callers of one unary method for a while, then calls/s
// and latency percentiles (ghz's report for gRPC, in short).

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/thread.h"
#include "runtime/client_context.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "tools/cli/commands.h"
#include "tools/cli/interrupt.h"
#include "tools/cli/latency_histogram.h"
#include "tools/cli/request_io.h"

namespace ipcrpc::cli {
namespace {

namespace pb = google::protobuf;
using Clock = std::chrono::steady_clock;

// What one caller saw.
struct CallerResult {
  LatencyHistogram latency;  // successful calls only
  std::map<absl::StatusCode, uint64_t> codes;
  std::string first_error[17];  // one message per failing code, to show
};

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Milliseconds(1)) return absl::StrFormat("%.1f us", absl::ToDoubleMicroseconds(d));
  if (d < absl::Seconds(1)) return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(d));
  return absl::StrFormat("%.2f s", absl::ToDoubleSeconds(d));
}

}  // namespace

int RunBench(const Options& options, DescriptorSource& source) {
  absl::StatusOr<const pb::MethodDescriptor*> found = source.FindMethod(options.positional[2]);
  if (!found.ok()) return ReportError(found.status());
  const pb::MethodDescriptor& method = **found;
  if (method.client_streaming() || method.server_streaming()) {
    return ReportError(absl::InvalidArgumentError(
        absl::StrCat("bench calls unary methods; ", method.full_name(), " is ",
                     method.client_streaming() && method.server_streaming() ? "bidi-streaming"
                     : method.client_streaming() ? "client-streaming"
                                                 : "server-streaming")));
  }
  const std::string wire_name = absl::StrCat("/", method.service()->full_name(), "/", method.name());
  MessageCodec codec(method.input_type());
  RequestInput input(options.data);
  std::string json;
  absl::StatusOr<bool> got = input.Next(&json);
  if (!got.ok()) return ReportError(got.status());
  if (!*got) json = "{}";
  absl::StatusOr<ByteBuffer> request = codec.FromJson(json);
  if (!request.ok()) return ReportError(request.status());
  source.EndLookups();
  const absl::Duration per_call_timeout = options.timeout.value_or(absl::Seconds(10));

  // Each connection is a channel of its own; callers share them round-robin.
  const std::string& address = options.positional[1];
  std::vector<std::shared_ptr<Channel>> channels;
  for (int i = 0; i < options.connections; ++i) {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address);
    if (!channel.ok()) return ReportError(channel.status());
    channels.push_back(*channel);
  }
  auto call_once = [&](GenericStub& stub, const ByteBuffer& request, ByteBuffer* response) {
    ClientContext ctx;
    ctx.set_timeout(per_call_timeout);
    for (const auto& [key, value] : options.metadata) ctx.AddMetadata(key, value);
    return stub.UnaryCall(&ctx, wire_name, request, response);
  };
  // One call per connection first: connects them, and a method that fails
  // outright (no server, unknown method) is reported instead of measured.
  for (const auto& channel : channels) {
    GenericStub stub(channel);
    ByteBuffer response;
    absl::Status status = call_once(stub, *request, &response);
    if (!status.ok()) {
      return ReportError(FromCall(absl::Status(
          status.code(), absl::StrCat("the first call failed: ", status.message()))));
    }
  }

  std::vector<CallerResult> results(options.concurrency);
  std::vector<std::thread> callers;
  // -n: each call claims a number first, so exactly that many are made.
  std::atomic<int64_t> claimed{0};
  const int64_t max_calls = options.total_calls > 0 ? options.total_calls : INT64_MAX;
  StopOnInterrupt interrupt;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      options.duration == absl::InfiniteDuration()
          ? Clock::time_point::max()
          : start + absl::ToChronoNanoseconds(options.duration);
  // On stderr, so that the report on stdout stays clean for scripts.
  std::fprintf(stderr, "Calling %s with %d callers %s (Ctrl-C ends it early)...\n",
               wire_name.c_str(), options.concurrency,
               options.total_calls > 0
                   ? absl::StrCat(options.total_calls, " times in all").c_str()
                   : absl::StrCat("for ", HumanDuration(options.duration)).c_str());
  absl::Status start_error;
  for (int i = 0; i < options.concurrency; ++i) {
    absl::StatusOr<std::thread> caller = internal::StartThread([&, i] {
      GenericStub stub(channels[i % channels.size()]);
      CallerResult& result = results[i];
      const ByteBuffer my_request = *request;  // each caller its own copy
      ByteBuffer response;
      for (Clock::time_point now = Clock::now();
           now < end && !interrupt.stopped() && claimed.fetch_add(1) < max_calls;) {
        absl::Status status = call_once(stub, my_request, &response);
        const Clock::time_point done = Clock::now();
        if (status.ok()) result.latency.Record(absl::FromChrono(done - now));
        ++result.codes[status.code()];
        const int code = static_cast<int>(status.code());
        if (!status.ok() && code >= 0 && code < 17 && result.first_error[code].empty()) {
          result.first_error[code] = std::string(status.message());
        }
        now = done;
      }
    });
    if (!caller.ok()) {  // the callers started so far run; the report says so
      start_error = caller.status();
      break;
    }
    callers.push_back(std::move(*caller));
  }
  for (std::thread& t : callers) t.join();
  const absl::Duration elapsed = absl::FromChrono(Clock::now() - start);
  if (!start_error.ok()) {
    std::fprintf(stderr, "ipcrpc bench: only %zu of %d callers started: %s\n", callers.size(),
                 options.concurrency, std::string(start_error.message()).c_str());
  }

  CallerResult total;
  for (const CallerResult& r : results) {
    total.latency.Merge(r.latency);
    for (const auto& [code, n] : r.codes) total.codes[code] += n;
    for (int c = 0; c < 17; ++c) {
      if (total.first_error[c].empty()) total.first_error[c] = r.first_error[c];
    }
  }
  uint64_t calls = 0;
  for (const auto& [code, n] : total.codes) calls += n;
  const uint64_t ok = total.latency.count();

  const std::pair<const char*, absl::Duration> latencies[] = {
      {"min", total.latency.min()},
      {"mean", total.latency.mean()},
      {"p50", total.latency.Percentile(50)},
      {"p90", total.latency.Percentile(90)},
      {"p99", total.latency.Percentile(99)},
      {"p99.9", total.latency.Percentile(99.9)},
      {"max", total.latency.max()},
  };
  const double calls_per_second = calls / absl::ToDoubleSeconds(elapsed);
  if (options.json) {
    // One object, for scripts: durations in microseconds.
    std::string codes;
    for (const auto& [code, n] : total.codes) {
      absl::StrAppend(&codes, codes.empty() ? "" : ", ", "\"", absl::StatusCodeToString(code),
                      "\": ", n);
    }
    std::string latency;
    for (const auto& [name, value] : latencies) {
      absl::StrAppendFormat(&latency, "%s\"%s\": %.3f", latency.empty() ? "" : ", ", name,
                            absl::ToDoubleMicroseconds(value));
    }
    std::printf(
        "{\"address\": \"%s\", \"method\": \"%s\", \"callers\": %zu, \"connections\": %d, "
        "\"seconds\": %.3f, \"calls\": %llu, \"ok\": %llu, \"calls_per_second\": %.1f, "
        "\"latency_us\": {%s}, \"status_codes\": {%s}, \"interrupted\": %s}\n",
        absl::CEscape(address).c_str(), wire_name.c_str(), callers.size(), options.connections,
        absl::ToDoubleSeconds(elapsed), static_cast<unsigned long long>(calls),
        static_cast<unsigned long long>(ok), calls_per_second, latency.c_str(), codes.c_str(),
        interrupt.stopped() ? "true" : "false");
  } else {
    std::printf("Summary:\n");
    std::printf("  Address:      %s\n", address.c_str());
    std::printf("  Method:       %s\n", wire_name.c_str());
    std::printf("  Callers:      %zu on %d connection%s\n", callers.size(), options.connections,
                options.connections == 1 ? "" : "s");
    std::printf("  Duration:     %s%s\n", HumanDuration(elapsed).c_str(),
                interrupt.stopped() ? " (interrupted)" : "");
    std::printf("  Calls:        %llu (%llu OK, %llu failed)\n",
                static_cast<unsigned long long>(calls), static_cast<unsigned long long>(ok),
                static_cast<unsigned long long>(calls - ok));
    std::printf("  Calls/s:      %.1f\n", calls_per_second);
    std::printf("\nLatency (OK calls):\n");
    for (const auto& [name, value] : latencies) {
      std::printf("  %-6s %s\n", name, HumanDuration(value).c_str());
    }
    std::printf("\nStatus codes:\n");
    for (const auto& [code, n] : total.codes) {
      const int c = static_cast<int>(code);
      std::printf("  %-20s %llu%s%s\n", absl::StatusCodeToString(code).c_str(),
                  static_cast<unsigned long long>(n), c > 0 && c < 17 ? "  " : "",
                  c > 0 && c < 17 ? total.first_error[c].c_str() : "");
    }
  }
  std::fflush(stdout);
  if (!start_error.ok()) return ReportError(start_error);
  return ok == calls ? kExitOk : kExitFailure;
}

}  // namespace ipcrpc::cli
