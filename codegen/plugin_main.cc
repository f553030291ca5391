// protoc-gen-ipcrpc: the protoc plugin that generates ipcrpc services.
//
// Usage (bazel/ipcrpc.bzl does this for you):
//   protoc --plugin=protoc-gen-ipcrpc=path/to/protoc-gen-ipcrpc
//          --cpp_out=OUT --ipcrpc_out=OUT foo/bar.proto
// writes OUT/foo/bar.ipcrpc.pb.h and OUT/foo/bar.ipcrpc.pb.cc.

#include "codegen/generator.h"
#include "google/protobuf/compiler/plugin.h"

int main(int argc, char* argv[]) {
  ipcrpc::codegen::IpcrpcGenerator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
