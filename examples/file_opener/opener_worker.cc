// The worker: opens files below one directory for the process that spawned
// it and hands it the open descriptors. Started by sandboxed_parent.
//
//   opener_worker DIRECTORY      (serves its inherited socketpair, then exits)

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "examples/file_opener/file_opener.ipcrpc.pb.h"
#include "runtime/file_descriptor.h"
#include "runtime/ipcrpc.h"

class FileOpenerImpl final : public demo::FileOpener::Service {
 public:
  explicit FileOpenerImpl(std::string root) : root_(std::move(root)) {}

  absl::Status Open(ipcrpc::ServerContext* ctx, const demo::OpenRequest* req,
                    demo::OpenReply* reply) override {
    // The policy lives here, in the process that may open files.
    if (!absl::StartsWith(req->path(), root_ + "/") || absl::StrContains(req->path(), "..")) {
      return absl::PermissionDeniedError(req->path() + " is not below " + root_);
    }
    ipcrpc::ScopedFd fd(::open(req->path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ipcrpc::ErrnoStatus(errno, "open " + req->path());
    // The call keeps the descriptor open until the reply has been sent.
    ipcrpc::AttachFd(ctx, reply->mutable_file(), std::move(fd));
    return absl::OkStatus();
  }

 private:
  const std::string root_;
};

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: opener_worker DIRECTORY\n");
    return 2;
  }
  auto transport = ipcrpc::TakeInheritedTransport();  // the parent's socketpair
  if (!transport.ok()) {
    std::fprintf(stderr, "opener_worker: %s\n", transport.status().ToString().c_str());
    return 1;
  }
  FileOpenerImpl service(argv[1]);
  ipcrpc::ServerBuilder builder;
  builder.AddTransport(std::move(*transport)).RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server.ok()) {
    std::fprintf(stderr, "opener_worker: %s\n", server.status().ToString().c_str());
    return 1;
  }
  (*server)->Wait();  // returns when the parent closes the connection
  return 0;
}
