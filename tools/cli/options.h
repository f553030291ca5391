// ipcrpc CLI: the command line, and how the tool reports failures.
//
// ParseCommandLine turns argv into Options (flags may come before, between
// or after the positional arguments); a malformed command line is
// INVALID_ARGUMENT with a message for the user. Exit codes, printed by
// ReportError:
//   0   success
//   1   the command line named something missing or malformed: bad address,
//       unknown service, method or symbol, bad JSON, unreadable --proto;
//       for bench: some calls failed
//   2   usage: unknown command or flag, missing argument
//   3   `health`: the server answered, but not SERVING
//   64 + code   a call failed with that gRPC status code (as grpcurl does):
//       e.g. 78 UNAVAILABLE (no server), 76 UNIMPLEMENTED, 68 DEADLINE_EXCEEDED
//
// Thread-safety: free functions, no shared state.

#ifndef IPCRPC_TOOLS_CLI_OPTIONS_H_
#define IPCRPC_TOOLS_CLI_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/metadata.h"

namespace ipcrpc::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotServing = 3;
constexpr int kExitStatusBase = 64;

struct Options {
  std::vector<std::string> positional;     // command, address, ...
  Metadata metadata;                       // -H key:value
  std::optional<absl::Duration> timeout;   // --timeout
  std::optional<std::string> data;         // -d
  std::vector<std::string> proto_files;    // --proto
  std::vector<std::string> import_paths;   // -I
  int concurrency = 10;                    // bench -c
  absl::Duration duration = absl::Seconds(10);  // bench -z
  int connections = 1;                     // bench --connections
  int64_t total_calls = 0;                 // bench -n (0: no limit)
  bool json = false;                       // bench --json
  bool verbose = false;                    // -v
  bool emit_defaults = false;              // --emit-defaults
  bool watch = false;                      // health --watch
  bool help = false;                       // -h, --help
};

absl::StatusOr<Options> ParseCommandLine(int argc, char** argv);

// The help text.
const char* UsageText();

// Marks `status` as the outcome of a call, so that ReportError exits 64 + code.
absl::Status FromCall(absl::Status status);

// Prints "ERROR: CODE_NAME: message" to stderr and returns the exit code.
int ReportError(const absl::Status& status);

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_OPTIONS_H_
