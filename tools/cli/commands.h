// ipcrpc CLI: the commands (see options.h for the command line and exit
// codes). Each prints its results on stdout and its errors on stderr and
// returns the process's exit code.
//
// Thread-safety: each runs on the main thread; `call` (bidi) and `bench`
// start threads of their own and join them before returning.

#ifndef IPCRPC_TOOLS_CLI_COMMANDS_H_
#define IPCRPC_TOOLS_CLI_COMMANDS_H_

#include <memory>

#include "runtime/channel.h"
#include "tools/cli/descriptor_source.h"
#include "tools/cli/options.h"

namespace ipcrpc::cli {

// ls ADDRESS [SERVICE]
int RunLs(const Options& options, DescriptorSource& source);
// describe ADDRESS SYMBOL
int RunDescribe(const Options& options, DescriptorSource& source);
// health ADDRESS [SERVICE]
int RunHealth(const Options& options, std::shared_ptr<Channel> channel);
// call ADDRESS METHOD
int RunCall(const Options& options, DescriptorSource& source, std::shared_ptr<Channel> channel);
// bench ADDRESS METHOD
int RunBench(const Options& options, DescriptorSource& source);

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_COMMANDS_H_
