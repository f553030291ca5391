// The parent: spawns opener_worker, asks it for files and reads them through
// the descriptors it receives (a sandboxed process would not be allowed to
// open them itself).
//
//   sandboxed_parent WORKER DIRECTORY FILE...   prints each file's first line

#include <unistd.h>

#include <cstdio>
#include <string>

#include "examples/file_opener/file_opener.ipcrpc.pb.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: sandboxed_parent WORKER DIRECTORY FILE...\n");
    return 2;
  }
  auto worker = ipcrpc::WorkerProcess::Spawn({argv[1], argv[2]});
  if (!worker.ok()) {
    std::fprintf(stderr, "spawn: %s\n", worker.status().ToString().c_str());
    return 1;
  }
  int failures = 0;
  {
    demo::FileOpener::Stub stub(ipcrpc::CreateChannelFromTransport(worker->TakeTransport()));
    for (int i = 3; i < argc; ++i) {
      ipcrpc::ClientContext ctx;
      demo::OpenRequest request;
      request.set_path(argv[i]);
      demo::OpenReply reply;
      absl::Status status = stub.Open(&ctx, request, &reply);
      absl::StatusOr<ipcrpc::ScopedFd> file =
          status.ok() ? ipcrpc::TakeFd(&ctx, reply.file()) : status;
      if (!file.ok()) {
        std::printf("%s: %s\n", argv[i], file.status().ToString().c_str());
        ++failures;
        continue;
      }
      char line[256] = {};
      ssize_t n = ::read(file->get(), line, sizeof(line) - 1);  // our own descriptor now
      std::string text(line, n > 0 ? static_cast<size_t>(n) : 0);
      std::printf("%s: %s\n", argv[i], text.substr(0, text.find('\n')).c_str());
    }
  }  // closing the channel lets the worker exit
  absl::StatusOr<int> exit_status = worker->Wait(absl::Seconds(5));
  return failures == 0 && exit_status.ok() ? 0 : 1;
}
