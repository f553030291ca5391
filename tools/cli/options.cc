#include "tools/cli/options.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ipcrpc::cli {
namespace {

constexpr char kCallPayload[] = "ipcrpc-cli/from-call";

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view flag,
                                                     absl::string_view text) {
  absl::Duration d;
  // A bare number means seconds ("--timeout 5").
  double seconds;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return Usage(absl::StrCat(flag, " ", text, ": not a duration (e.g. 5s, 250ms, 1m)"));
  }
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return Usage(absl::StrCat(flag, " ", text, ": must be positive and finite"));
  }
  return d;
}

absl::StatusOr<int> ParseCount(absl::string_view flag, absl::string_view text, int max) {
  int n;
  if (!absl::SimpleAtoi(text, &n) || n < 1 || n > max) {
    return Usage(absl::StrCat(flag, " ", text, ": must be a whole number from 1 to ", max));
  }
  return n;
}

}  // namespace

const char* UsageText() {
  return R"(usage: ipcrpc COMMAND ADDRESS [ARGS] [FLAGS]

Commands:
  ls ADDRESS [SERVICE]         the server's services, or SERVICE's methods
  describe ADDRESS SYMBOL      a service, method, message, enum or field as .proto text
  call ADDRESS pkg.Service/Method [-d JSON]
                               calls the method; requests are JSON objects from -d or
                               stdin (one per line, or one after another), responses are
                               printed as one JSON object per line
  health ADDRESS [SERVICE] [--watch]
                               grpc.health.v1 Check ("" = the whole server); with
                               --watch, Watch: prints each status as it changes until
                               Ctrl-C, --timeout or the server ends it
  bench ADDRESS pkg.Service/Method [-d JSON] [-c N] [-z DURATION | -n CALLS]
        [--connections K] [--json]
                               N concurrent callers of a unary method for DURATION (or
                               CALLS calls in all); prints calls/s and latency percentiles.
                               Ctrl-C ends it early with a report of what was done

ADDRESS is any ipcrpc address: unix:/path.sock, unix:@name, shm:/path.sock,
shm+sem:..., fifo:..., msgq:..., auto:..., or a name from IPCRPC_CONFIG.

Flags:
  -d JSON              request(s) as JSON (default: read stdin; an empty input is {})
  -H key:value         metadata sent with the call (repeatable)
  --timeout DURATION   deadline per call (e.g. 5s, 250ms; default: none for call and
                       health --watch, 10s for ls/describe/health and each bench call)
  --proto FILE         describe methods from this .proto instead of the server's
                       reflection service (repeatable)
  -I DIR               import path for --proto (repeatable; default: each file's directory)
  -v                   also print response metadata (initial and trailing) on stderr
  --emit-defaults      print fields that have their default value
  -c N                 bench: concurrent callers (default 10)
  -z DURATION          bench: how long to call (default 10s, or no limit with -n)
  -n CALLS             bench: stop after this many calls in all
  --connections K      bench: connections the callers share (default 1)
  --json               bench: print the report as one JSON object (times in us)

Exit status: 0 success; 1 something named on the command line is missing or
malformed (or, for bench, some calls failed); 2 usage; 3 health answered but
not SERVING (health --watch: the last status it printed, when Ctrl-C or
--timeout ended the watch); 64 + code when a call failed with that gRPC status code (e.g. 78
UNAVAILABLE, 76 UNIMPLEMENTED, 68 DEADLINE_EXCEEDED).
)";
}

absl::StatusOr<Options> ParseCommandLine(int argc, char** argv) {
  Options options;
  bool duration_given = false;  // -n alone runs without a time limit
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) options.positional.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-' || absl::ascii_isdigit(arg[1])) {
      options.positional.push_back(arg);
      continue;
    }
    // --flag=value, --flag value, -d value, -dvalue
    std::string flag = arg, value;
    bool has_value = false;
    if (absl::StartsWith(arg, "--")) {
      if (size_t eq = arg.find('='); eq != std::string::npos) {
        flag = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        has_value = true;
      }
    } else if (arg.size() > 2) {
      flag = arg.substr(0, 2);
      value = arg.substr(2);
      has_value = true;
    }
    auto take_value = [&]() -> absl::StatusOr<std::string> {
      if (has_value) return value;
      if (i + 1 >= argc) return Usage(absl::StrCat(flag, " needs a value"));
      return std::string(argv[++i]);
    };
    auto boolean = [&](bool* target) -> absl::Status {
      if (has_value) return Usage(absl::StrCat(flag, " takes no value"));
      *target = true;
      return absl::OkStatus();
    };
    absl::Status status;
    if (flag == "-h" || flag == "--help") {
      status = boolean(&options.help);
    } else if (flag == "-v" || flag == "--verbose") {
      status = boolean(&options.verbose);
    } else if (flag == "--emit-defaults") {
      status = boolean(&options.emit_defaults);
    } else if (flag == "--watch") {
      status = boolean(&options.watch);
    } else if (flag == "-d" || flag == "--data") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      options.data = *v;
    } else if (flag == "-H" || flag == "--header") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      size_t colon = v->find(':');
      std::string key = colon == std::string::npos ? "" : std::string(absl::StripAsciiWhitespace(
                                                               v->substr(0, colon)));
      if (key.empty()) {
        return Usage(absl::StrCat("-H ", *v, ": write metadata as key:value"));
      }
      options.metadata.emplace(absl::AsciiStrToLower(key),
                               std::string(absl::StripLeadingAsciiWhitespace(v->substr(colon + 1))));
    } else if (flag == "--timeout") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      absl::StatusOr<absl::Duration> d = ParsePositiveDuration(flag, *v);
      if (!d.ok()) return d.status();
      options.timeout = *d;
    } else if (flag == "-z" || flag == "--duration") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      absl::StatusOr<absl::Duration> d = ParsePositiveDuration(flag, *v);
      if (!d.ok()) return d.status();
      options.duration = *d;
      duration_given = true;
    } else if (flag == "-c" || flag == "--concurrency") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      absl::StatusOr<int> n = ParseCount(flag, *v, 1000);
      if (!n.ok()) return n.status();
      options.concurrency = *n;
    } else if (flag == "-n" || flag == "--total") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      absl::StatusOr<int> n = ParseCount(flag, *v, 1000000000);
      if (!n.ok()) return n.status();
      options.total_calls = *n;
      if (!duration_given) options.duration = absl::InfiniteDuration();
    } else if (flag == "--json") {
      status = boolean(&options.json);
    } else if (flag == "--connections") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      absl::StatusOr<int> n = ParseCount(flag, *v, 1000);
      if (!n.ok()) return n.status();
      options.connections = *n;
    } else if (flag == "--proto") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      options.proto_files.push_back(*v);
    } else if (flag == "-I" || flag == "--import_path" || flag == "--proto_path") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      options.import_paths.push_back(*v);
    } else {
      return Usage(absl::StrCat("unknown flag ", arg));
    }
    if (!status.ok()) return status;
  }
  return options;
}

absl::Status FromCall(absl::Status status) {
  if (!status.ok()) status.SetPayload(kCallPayload, absl::Cord());
  return status;
}

int ReportError(const absl::Status& status) {
  std::fprintf(stderr, "ERROR: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  if (status.GetPayload(kCallPayload).has_value()) {
    return kExitStatusBase + static_cast<int>(status.code());
  }
  return kExitFailure;
}

}  // namespace ipcrpc::cli
