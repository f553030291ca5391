// ipcrpc CLI: where the .proto descriptions of a server's services come from.
//
// A DescriptorSource answers "which services are there" and "describe this
// symbol" from one of two places:
//   * ReflectionSource: the server itself, through gRPC's reflection service
//     (grpc.reflection.v1, falling back to v1alpha; runtime/reflection.h).
//     Files are fetched on demand over one ServerReflectionInfo stream and
//     kept, so each is asked for once.
//   * ProtoFileSource: .proto files on disk, parsed with protobuf's
//     compiler::Importer (import paths from -I; the well-known types from
//     /usr/include are found without one).
// Both give a DescriptorPool whose messages the CLI builds with a
// DynamicMessageFactory.
//
// Thread-safety: not thread-safe; the CLI resolves everything on its main
// thread before any call starts. Lifetime: descriptors live as long as the
// source.
//
// Example:
//   auto source = ReflectionSource(channel, metadata, absl::Seconds(10));
//   auto method = (*source)->FindMethod("demo.Greeter/SayHello");

#ifndef IPCRPC_TOOLS_CLI_DESCRIPTOR_SOURCE_H_
#define IPCRPC_TOOLS_CLI_DESCRIPTOR_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "runtime/channel.h"
#include "runtime/metadata.h"

namespace ipcrpc::cli {

class DescriptorSource {
 public:
  virtual ~DescriptorSource() = default;

  // Full names of the services ("pkg.Service"), as the server lists them or
  // in the order the files declare them.
  virtual absl::StatusOr<std::vector<std::string>> ListServices() = 0;

  // The descriptor of a fully-qualified symbol: a service, method, message,
  // field, enum, enum value or extension ("pkg.Service.Method"). A leading
  // '.' is ignored. NOT_FOUND names the symbol; a failing reflection call
  // gives that call's status.
  absl::StatusOr<const google::protobuf::FileDescriptor*> FindFileContainingSymbol(
      const std::string& symbol);
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> FindService(const std::string& name);

  // A method by "pkg.Service/Method", "/pkg.Service/Method" or
  // "pkg.Service.Method". NOT_FOUND says which part is unknown and what
  // there is instead.
  absl::StatusOr<const google::protobuf::MethodDescriptor*> FindMethod(const std::string& name);

  // What a name stands for, printed as .proto text (the `describe` command).
  absl::StatusOr<std::string> Describe(const std::string& symbol);

  virtual const google::protobuf::DescriptorPool* pool() const = 0;

  // Ends the reflection stream, if one is open, so that it does not hold a
  // server thread while a long call or a bench runs; a later lookup opens a
  // new one.
  virtual void EndLookups() {}

 protected:
  // Why the last lookup in pool() failed beyond "not there" (e.g. the
  // reflection call failed); OK if it simply was not found.
  virtual absl::Status LastError() const { return absl::OkStatus(); }
};

// Descriptions from the reflection service of the server behind `channel`;
// each reflection call carries `metadata` and ends after `timeout`.
// Nothing is asked before the first lookup.
std::unique_ptr<DescriptorSource> ReflectionSource(std::shared_ptr<Channel> channel,
                                                   Metadata metadata, absl::Duration timeout);

// Descriptions parsed from `files` (paths as given on the command line),
// found in `import_paths` (the current directory if empty). Parse errors come
// back INVALID_ARGUMENT with every message protoc would print.
absl::StatusOr<std::unique_ptr<DescriptorSource>> ProtoFileSource(
    const std::vector<std::string>& files, const std::vector<std::string>& import_paths);

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_DESCRIPTOR_SOURCE_H_
