// ipcrpc: a command-line client for ipcrpc servers (grpcurl's and ghz's
// jobs): list and describe services, call any method with JSON, check
// health, measure a method's throughput and latency. `ipcrpc --help` and
// README.md ("Tools") say how to use it.

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/ipcrpc.h"
#include "tools/cli/commands.h"
#include "tools/cli/descriptor_source.h"
#include "tools/cli/options.h"

namespace ipcrpc::cli {
namespace {

// How many positional arguments (the command's included) each command takes.
struct CommandShape {
  const char* name;
  size_t min_args;
  size_t max_args;
  const char* usage;
};
constexpr CommandShape kCommands[] = {
    {"ls", 2, 3, "ls ADDRESS [SERVICE]"},
    {"describe", 3, 3, "describe ADDRESS SYMBOL"},
    {"call", 3, 3, "call ADDRESS pkg.Service/Method [-d JSON]"},
    {"health", 2, 3, "health ADDRESS [SERVICE] [--watch]"},
    {"bench", 3, 3, "bench ADDRESS pkg.Service/Method [-d JSON] [-c N] [-z DURATION]"},
};

int UsageError(const std::string& message) {
  std::fprintf(stderr, "ipcrpc: %s\n(ipcrpc --help lists the commands and flags)\n",
               message.c_str());
  return kExitUsage;
}

int Main(int argc, char** argv) {
  absl::StatusOr<Options> parsed = ParseCommandLine(argc, argv);
  if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
  const Options& options = *parsed;
  if (options.help || (options.positional.size() == 1 && options.positional[0] == "help")) {
    std::fputs(UsageText(), stdout);
    return kExitOk;
  }
  if (options.positional.empty()) return UsageError("no command given");
  const std::string& command = options.positional[0];
  const CommandShape* shape = nullptr;
  for (const CommandShape& c : kCommands) {
    if (command == c.name) shape = &c;
  }
  if (shape == nullptr) return UsageError(absl::StrCat("unknown command \"", command, "\""));
  if (options.positional.size() < shape->min_args || options.positional.size() > shape->max_args) {
    return UsageError(absl::StrCat("usage: ipcrpc ", shape->usage));
  }

  if (options.watch && command != "health") return UsageError("--watch is for health");
  const std::string& address = options.positional[1];
  absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(address);
  if (!channel.ok()) return ReportError(channel.status());
  if (command == "health") return RunHealth(options, *channel);

  std::unique_ptr<DescriptorSource> source;
  if (!options.proto_files.empty()) {
    absl::StatusOr<std::unique_ptr<DescriptorSource>> files =
        ProtoFileSource(options.proto_files, options.import_paths);
    if (!files.ok()) return ReportError(files.status());
    source = std::move(*files);
  } else {
    source = ReflectionSource(*channel, options.metadata,
                              options.timeout.value_or(absl::Seconds(10)));
  }
  if (command == "ls") return RunLs(options, *source);
  if (command == "describe") return RunDescribe(options, *source);
  if (command == "call") return RunCall(options, *source, *channel);
  return RunBench(options, *source);
}

}  // namespace
}  // namespace ipcrpc::cli

int main(int argc, char** argv) { return ipcrpc::cli::Main(argc, argv); }
