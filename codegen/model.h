// protoc-gen-ipcrpc: the model the generated code is printed from.
//
// BuildFileModel() reads a .proto file's descriptors once and resolves
// everything the templates in generator.cc need as plain strings: wire names,
// fully-qualified C++ types (protobuf's own naming, e.g. `::pkg::Outer_Inner`)
// and C++ identifiers made safe by the naming rules of docs/CODEGEN.md. The
// templates substitute these strings and make no decisions of their own.
//
// Thread-safety: plain data; BuildFileModel() is a pure function.
//
// Example:
//   FileModel model = BuildFileModel(*file);
//   for (const ServiceModel& service : model.services)
//     for (const MethodModel& method : service.methods)
//       std::cout << method.wire_name << "\n";   // "/demo.Greeter/SayHello"

#ifndef IPCRPC_CODEGEN_MODEL_H_
#define IPCRPC_CODEGEN_MODEL_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace ipcrpc {
namespace codegen {

// The four call shapes; the same order and meaning as ipcrpc::RpcKind.
enum class MethodKind {
  kUnary,
  kServerStreaming,
  kClientStreaming,
  kBidiStreaming
};

struct MethodModel {
  std::string proto_name;      // "SayHello", as written in the .proto
  std::string cpp_name;        // member name in Service, Stub... ("delete_")
  std::string wire_name;       // "/demo.Greeter/SayHello"
  MethodKind kind = MethodKind::kUnary;
  std::string request_type;   // "::demo::HelloRequest"
  std::string response_type;  // "::demo::HelloReply"
  // The leading .proto comment, one entry per line, safe to print after
  // `// ` (see CommentLines); empty without a comment.
  std::vector<std::string> comment;
};

struct ServiceModel {
  std::string full_name;   // "demo.Greeter"
  std::string proto_name;  // "Greeter"
  std::string cpp_name;    // the generated class ("Greeter", "Service_")
  std::string table_name;  // the method table ("kGreeterMethods")
  std::vector<std::string> comment;  // as MethodModel::comment
  std::vector<MethodModel> methods;  // in .proto order
};

struct FileModel {
  std::string proto_path;  // "demo/greeter.proto", as imported
  std::string
      base_path;  // "demo/greeter": outputs are base_path + ".ipcrpc.pb.h/.cc"
  std::string cpp_namespace;  // "a::b::c"; empty when the file has no package
  std::vector<ServiceModel> services;  // in .proto order
};

FileModel BuildFileModel(const google::protobuf::FileDescriptor& file);

// FAILED_PRECONDITION, naming the file, the service and the option, for a
// file protoc-gen-ipcrpc cannot generate correct code for: one with services
// and `option cc_generic_services = true` (protoc's C++ generator then
// declares a class with the service's name, as this generator does).
absl::Status CheckSupported(const google::protobuf::FileDescriptor& file);

// --- Naming helpers, exposed for tests. ---

// The lines of a .proto comment, each safe to print after `// ` in C++:
// split where C++ ends a `//` comment (\n, \r\n and a lone \r); the common
// indentation (and the first line's) and trailing whitespace removed; leading
// and trailing blank lines dropped; other control characters become spaces;
// a trigraph `??X` is written `?\?X` (so `??/` cannot splice lines); and
// backslashes at the end of a line are dropped (they would splice the next
// generated line into the comment).
std::vector<std::string> CommentLines(absl::string_view text);

// An identifier made from a file name as protobuf's C++ generator makes its
// include guards: letters and digits stay, every other byte becomes `_` and
// two hex digits (`a/b_c.proto` -> `a_2fb_5fc_2eproto`).
std::string FilenameIdentifier(absl::string_view filename);

// true for C++ keywords and alternative tokens (C++20's included).
bool IsCppKeyword(absl::string_view name);

// `name`, with "_" appended until it is neither a keyword nor in `taken`.
std::string MakeUnique(std::string name, const std::set<std::string>& taken);

}  // namespace codegen
}  // namespace ipcrpc

#endif  // IPCRPC_CODEGEN_MODEL_H_
