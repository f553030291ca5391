// ipcrpc: gRPC's server reflection service, grpc.reflection.v1 and v1alpha.
//
// ProtoServerReflection answers ServerReflectionInfo exactly as gRPC's
// (grpcpp's ProtoServerReflection) does, so reflection clients — the
// `ipcrpc` command-line tool (tools/cli/), and grpcurl or Postman through the
// gRPC bridge — can list a server's services and fetch the .proto
// descriptions they need to call them without compiled-in stubs:
//   * list_services: the registered services (the reflection and health
//     services included) and ReflectionOptions::extra_services;
//   * file_by_filename, file_containing_symbol ("pkg.Service",
//     "pkg.Service.Method", "pkg.Message", "pkg.Message.field", "pkg.Enum"),
//     file_containing_extension: the file with its transitive dependencies,
//     each file at most once per stream (as gRPC does);
//   * all_extension_numbers_of_type: every known extension number;
//   * an unknown name: error_response NOT_FOUND; the stream stays open.
// Both packages are served (grpc.reflection.v1 and the older
// grpc.reflection.v1alpha, which many clients still ask for first).
//
// Descriptions come from protobuf's generated pool, which holds every
// message and service whose generated code is linked into the program, so a
// registered ipcrpc service is described with no further work. What a
// GenericService serves is not known to the server: name it in
// ReflectionOptions::extra_services and describe it in a DescriptorPool
// given in ReflectionOptions::descriptor_pools.
//
// Enabling it is one line, ServerBuilder::EnableReflection() (grpcpp's
// grpc::reflection::InitProtoReflectionServerBuilderPlugin(), or Go's
// reflection.Register(server)). The two services are then ordinary
// registered services, visible to everything that sees registered services
// (the gRPC bridge included).
//
// Thread-safety: thread-safe; each stream is served on its own handler
// thread. Lifetime: must outlive the server it is registered with (the
// builder's own one does); pools in ReflectionOptions must outlive it.
//
// Example:
//   builder.RegisterService(&greeter).EnableReflection();
//   // $ ipcrpc ls unix:/run/greeter.sock
//   // $ ipcrpc describe unix:/run/greeter.sock demo.Greeter
//
//   // A generic service described by a pool of its own:
//   ipcrpc::ReflectionOptions reflection;
//   reflection.descriptor_pools = {&proxied_pool};
//   reflection.extra_services = {"other.Service"};
//   builder.RegisterGenericService(&proxy).EnableReflection(reflection);

#ifndef IPCRPC_RUNTIME_REFLECTION_H_
#define IPCRPC_RUNTIME_REFLECTION_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "proto/grpc/reflection/v1/reflection.ipcrpc.pb.h"
#include "proto/grpc/reflection/v1alpha/reflection.ipcrpc.pb.h"
#include "runtime/server_context.h"
#include "runtime/service.h"
#include "runtime/sync_stream.h"

namespace ipcrpc {

struct ReflectionOptions {
  // Searched after protobuf's generated pool, in this order. Not owned;
  // each must outlive the server.
  std::vector<const google::protobuf::DescriptorPool*> descriptor_pools;
  // Listed by list_services besides the registered services, e.g. the
  // services a GenericService serves ("pkg.Service").
  std::vector<std::string> extra_services;
};

class ProtoServerReflection {
 public:
  // Lists `services` (full names, in this order) and describes what
  // protobuf's generated pool and `options.descriptor_pools` hold.
  ProtoServerReflection(std::vector<std::string> services, ReflectionOptions options);
  ProtoServerReflection(const ProtoServerReflection&) = delete;
  ProtoServerReflection& operator=(const ProtoServerReflection&) = delete;

  // The services to register: grpc.reflection.v1.ServerReflection and
  // grpc.reflection.v1alpha.ServerReflection.
  Service* v1_service() { return &v1_; }
  Service* v1alpha_service() { return &v1alpha_; }

  // What one stream has sent so far: files are sent at most once per stream.
  struct StreamState {
    absl::flat_hash_set<std::string> sent_files;
  };
  // Answers one request; never fails (failures are error_responses).
  void Answer(const grpc::reflection::v1::ServerReflectionRequest& request, StreamState* stream,
              grpc::reflection::v1::ServerReflectionResponse* response) const;

 private:
  class V1Service final : public grpc::reflection::v1::ServerReflection::Service {
   public:
    explicit V1Service(const ProtoServerReflection* owner) : owner_(owner) {}
    absl::Status ServerReflectionInfo(
        ServerContext* context,
        ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                           grpc::reflection::v1::ServerReflectionRequest>* stream) override;

   private:
    const ProtoServerReflection* owner_;
  };
  class V1AlphaService final : public grpc::reflection::v1alpha::ServerReflection::Service {
   public:
    explicit V1AlphaService(const ProtoServerReflection* owner) : owner_(owner) {}
    absl::Status ServerReflectionInfo(
        ServerContext* context,
        ServerReaderWriter<grpc::reflection::v1alpha::ServerReflectionResponse,
                           grpc::reflection::v1alpha::ServerReflectionRequest>* stream) override;

   private:
    const ProtoServerReflection* owner_;
  };

  // The first pool that knows the name, or NOT_FOUND.
  absl::StatusOr<const google::protobuf::FileDescriptor*> FindFileByName(
      const std::string& name) const;
  absl::StatusOr<const google::protobuf::FileDescriptor*> FindFileContainingSymbol(
      const std::string& symbol) const;
  absl::StatusOr<const google::protobuf::FileDescriptor*> FindFileContainingExtension(
      const std::string& type, int number) const;
  absl::StatusOr<std::vector<int>> FindExtensionNumbers(const std::string& type) const;
  // `file` and its transitive dependencies not yet in `stream->sent_files`.
  static void AddFiles(const google::protobuf::FileDescriptor* file, StreamState* stream,
                       grpc::reflection::v1::FileDescriptorResponse* out);

  const std::vector<std::string> services_;
  std::vector<const google::protobuf::DescriptorPool*> pools_;  // generated pool first
  V1Service v1_{this};
  V1AlphaService v1alpha_{this};
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_REFLECTION_H_
