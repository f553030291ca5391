// protoc-gen-ipcrpc: prints the generated code.
//
// For `foo/bar.proto` protoc's own C++ generator writes `foo/bar.pb.h/.cc`
// (messages); this generator writes `foo/bar.ipcrpc.pb.h/.cc` next to them
// (services: a method table, `<Service>::Service` to derive from on the
// server side, `<Service>::StubInterface` and its implementation
// `<Service>::Stub` on the client side). A file without services
// still gets both files, nearly empty, so build rules can always expect them.
// What exactly is generated, and the naming rules: docs/CODEGEN.md.
//
// Thread-safety: stateless; protoc calls Generate() once per file.
//
// Example (what plugin_main.cc does):
//   ipcrpc::codegen::IpcrpcGenerator generator;
//   return google::protobuf::compiler::PluginMain(argc, argv, &generator);

#ifndef IPCRPC_CODEGEN_GENERATOR_H_
#define IPCRPC_CODEGEN_GENERATOR_H_

#include <cstdint>
#include <string>

#include "codegen/model.h"
#include "google/protobuf/compiler/code_generator.h"
#include "google/protobuf/descriptor.h"

namespace ipcrpc {
namespace codegen {

// The text of `<base_path>.ipcrpc.pb.h` and `<base_path>.ipcrpc.pb.cc`.
std::string GenerateHeader(const FileModel& file);
std::string GenerateSource(const FileModel& file);

class IpcrpcGenerator final : public google::protobuf::compiler::CodeGenerator {
 public:
  // Takes no parameter (`--ipcrpc_out=DIR`); fails on any, and on a file
  // CheckSupported() (model.h) refuses.
  bool Generate(const google::protobuf::FileDescriptor* file,
                const std::string& parameter,
                google::protobuf::compiler::GeneratorContext* context,
                std::string* error) const override;

  // Method signatures only name message types, so proto3 `optional` fields
  // need nothing from us.
  uint64_t GetSupportedFeatures() const override {
    return FEATURE_PROTO3_OPTIONAL;
  }
};

}  // namespace codegen
}  // namespace ipcrpc

#endif  // IPCRPC_CODEGEN_GENERATOR_H_
