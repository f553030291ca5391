#include "codegen/model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/compiler/cpp/names.h"
#include "google/protobuf/descriptor.pb.h"

namespace ipcrpc {
namespace codegen {
namespace {

namespace pb = ::google::protobuf;
namespace cpp = ::google::protobuf::compiler::cpp;

using NameSet = std::set<std::string>;

// Members of each generated <Service> class: a service may not be named like
// one of them (a class may not have a member named like itself).
const NameSet& ServiceClassMembers() {
  static const auto* const kNames = new NameSet{
      "Service", "StubInterface", "Stub", "NewStub", "kServiceName", "CallbackService"};
  return *kNames;
}

// What a method may not be named: every method is a member of the classes
// Service, StubInterface and Stub (and, if unary, of async_interface and
// Stub's `async`), and C++ forbids a member named like its own class; the
// others are members generated in the same classes as the methods, and the
// template parameter of every WithCallbackMethod_<Method> class.
const NameSet& ReservedMethodNames() {
  static const auto* const kNames =
      new NameSet{"Service", "StubInterface",  "Stub",        "async",
                  "async_interface", "channel_", "async_stub_", "stub_", "BaseClass"};
  return *kNames;
}

// Namespaces the generated code names; only a file without a package (whose
// classes land in the global namespace) can clash with them.
const NameSet& GlobalNamespaceNames() {
  static const auto* const kNames =
      new NameSet{"absl", "google", "ipcrpc", "std"};
  return *kNames;
}

// The names protobuf's C++ generator declares at namespace scope for one
// message (recursively) or enum: classes, enum types and enum constants.
void AddEnumNames(const pb::EnumDescriptor& e, NameSet* names) {
  const std::string type = cpp::ClassName(&e);
  names->insert(type);
  for (int i = 0; i < e.value_count(); ++i) {
    names->insert(e.containing_type() == nullptr
                      ? cpp::EnumValueName(e.value(i))
                      : absl::StrCat(type, "_", e.value(i)->name()));
  }
}

void AddMessageNames(const pb::Descriptor& m, NameSet* names) {
  names->insert(cpp::ClassName(&m));
  for (int i = 0; i < m.nested_type_count(); ++i) {
    AddMessageNames(*m.nested_type(i), names);
  }
  for (int i = 0; i < m.enum_type_count(); ++i) {
    AddEnumNames(*m.enum_type(i), names);
  }
}

// Everything protobuf declares in `package`'s namespace, as far as `file` and
// its transitive imports show it.
void AddProtobufNames(const pb::FileDescriptor& file,
                      const std::string& package,
                      std::set<const pb::FileDescriptor*>* seen,
                      NameSet* names) {
  if (!seen->insert(&file).second) return;
  if (file.package() == package) {
    for (int i = 0; i < file.message_type_count(); ++i) {
      AddMessageNames(*file.message_type(i), names);
    }
    for (int i = 0; i < file.enum_type_count(); ++i) {
      AddEnumNames(*file.enum_type(i), names);
    }
    for (int i = 0; i < file.extension_count(); ++i) {
      names->insert(cpp::FieldName(file.extension(i)));
    }
  }
  for (int i = 0; i < file.dependency_count(); ++i) {
    AddProtobufNames(*file.dependency(i), package, seen, names);
  }
}

// The leading comment of a service or method (see CommentLines).
template <class T>
std::vector<std::string> LeadingComment(const T& descriptor) {
  pb::SourceLocation location;
  if (!descriptor.GetSourceLocation(&location)) return {};
  return CommentLines(location.leading_comments);
}

// `line` with trigraphs escaped and control characters other than tab turned
// into spaces.
std::string EscapeCommentLine(absl::string_view line) {
  static constexpr absl::string_view kTrigraphEnds = "=/'()!<>-";
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == '?' && i + 2 < line.size() && line[i + 1] == '?' &&
        kTrigraphEnds.find(line[i + 2]) != absl::string_view::npos) {
      out += "?\\";  // `??/` -> `?\?/`: the second `?` follows below
      continue;
    }
    out += (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : line[i];
  }
  return out;
}

MethodKind KindOf(const pb::MethodDescriptor& method) {
  if (method.client_streaming()) {
    return method.server_streaming() ? MethodKind::kBidiStreaming
                                     : MethodKind::kClientStreaming;
  }
  return method.server_streaming() ? MethodKind::kServerStreaming
                                   : MethodKind::kUnary;
}

// Resolves method names inside one service (rules: docs/CODEGEN.md). A
// method keeps its .proto name unless C++ forbids it there (a keyword, or a
// name in ReservedMethodNames); a rename never takes a name some other method
// has in the .proto.
void NameMethods(ServiceModel* service) {
  NameSet members = ReservedMethodNames();
  for (MethodModel& m : service->methods) {
    NameSet taken = members;
    for (const MethodModel& other : service->methods) {
      if (&other != &m) taken.insert(other.proto_name);
    }
    m.cpp_name = MakeUnique(m.proto_name, taken);
    members.insert(m.cpp_name);
  }
}

MethodModel BuildMethod(const pb::MethodDescriptor& method) {
  MethodModel m;
  m.proto_name = method.name();
  m.wire_name =
      absl::StrCat("/", method.service()->full_name(), "/", method.name());
  m.kind = KindOf(method);
  m.request_type = cpp::QualifiedClassName(method.input_type());
  m.response_type = cpp::QualifiedClassName(method.output_type());
  m.comment = LeadingComment(method);
  return m;
}

ServiceModel BuildService(const pb::ServiceDescriptor& service) {
  ServiceModel s;
  s.full_name = service.full_name();
  s.proto_name = service.name();
  s.comment = LeadingComment(service);
  for (int i = 0; i < service.method_count(); ++i) {
    s.methods.push_back(BuildMethod(*service.method(i)));
  }
  return s;
}

// Resolves the class and method-table names of a file's services (rules:
// docs/CODEGEN.md). A service keeps its .proto name unless that is a keyword,
// a member of the class it names, or a name already declared in the
// namespace; a rename never takes another service's .proto name. Tables
// yield to classes: they are named once every class name is known.
void NameServices(const pb::FileDescriptor& file,
                  std::vector<ServiceModel>* services) {
  NameSet scope;
  std::set<const pb::FileDescriptor*> seen;
  AddProtobufNames(file, file.package(), &seen, &scope);
  if (file.package().empty()) {
    scope.insert(GlobalNamespaceNames().begin(), GlobalNamespaceNames().end());
  }
  for (ServiceModel& s : *services) {
    NameSet taken = scope;
    taken.insert(ServiceClassMembers().begin(), ServiceClassMembers().end());
    for (const ServiceModel& other : *services) {
      if (&other != &s) taken.insert(other.proto_name);
    }
    s.cpp_name = MakeUnique(s.proto_name, taken);
    scope.insert(s.cpp_name);
  }
  for (ServiceModel& s : *services) {
    s.table_name =
        MakeUnique(absl::StrCat("k", s.proto_name, "Methods"), scope);
    scope.insert(s.table_name);
  }
}

}  // namespace

std::vector<std::string> CommentLines(absl::string_view text) {
  std::vector<std::string> lines;
  const std::string unix_text = absl::StrReplaceAll(text, {{"\r\n", "\n"}});
  for (absl::string_view raw :
       absl::StrSplit(unix_text, absl::ByAnyChar("\r\n"))) {
    std::string line = EscapeCommentLine(raw);
    while (!line.empty() && (absl::ascii_isspace(line.back()) ||
                             line.back() == '\\')) {
      line.pop_back();
    }
    lines.push_back(std::move(line));
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  size_t first = 0;
  while (first < lines.size() && lines[first].empty()) ++first;
  lines.erase(lines.begin(), lines.begin() + first);
  size_t indent = std::string::npos;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    indent = std::min(indent, line.find_first_not_of(" \t"));
  }
  for (std::string& line : lines) {
    if (!line.empty()) line.erase(0, indent);
  }
  // protoc strips the indentation of a block comment's later lines, but not
  // the space after `/*`.
  if (!lines.empty()) {
    lines[0].erase(0, lines[0].find_first_not_of(" \t"));
  }
  return lines;
}

std::string FilenameIdentifier(absl::string_view filename) {
  std::string id;
  for (char c : filename) {
    if (absl::ascii_isalnum(c)) {
      id += c;
    } else {
      absl::StrAppend(&id, "_",
                      absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return id;
}

absl::Status CheckSupported(const pb::FileDescriptor& file) {
  if (file.service_count() > 0 && file.options().cc_generic_services()) {
    const pb::ServiceDescriptor& service = *file.service(0);
    return absl::FailedPreconditionError(absl::StrCat(
        file.name(), ": service ", service.full_name(),
        ": option cc_generic_services = true makes protoc's C++ generator "
        "declare a class of the same name (",
        absl::StrReplaceAll(service.full_name(), {{".", "::"}}),
        "), which is the class protoc-gen-ipcrpc generates. Remove the option "
        "or set it to false; ipcrpc does not use protobuf's generic services."));
  }
  return absl::OkStatus();
}

bool IsCppKeyword(absl::string_view name) {
  static const auto* const kKeywords = new NameSet{
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor",
      "bool", "break", "case", "catch", "char", "char8_t", "char16_t",
      "char32_t", "class", "compl", "concept", "const", "consteval",
      "constexpr", "constinit", "const_cast", "continue", "co_await",
      "co_return", "co_yield", "decltype", "default", "delete", "do", "double",
      "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false",
      "float", "for", "friend", "goto", "if", "inline", "int", "long",
      "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr",
      "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "return", "short", "signed", "sizeof",
      "static", "static_assert", "static_cast", "struct", "switch", "template",
      "this", "thread_local", "throw", "true", "try", "typedef", "typeid",
      "typename", "union", "unsigned", "using", "virtual", "void", "volatile",
      "wchar_t", "while", "xor", "xor_eq",
      // Standard macros that would expand inside a declaration.
      "NULL", "EOF", "assert", "errno", "offsetof", "stderr", "stdin",
      "stdout"};
  return kKeywords->count(std::string(name)) > 0;
}

std::string MakeUnique(std::string name, const NameSet& taken) {
  while (IsCppKeyword(name) || taken.count(name) > 0) name += "_";
  return name;
}

FileModel BuildFileModel(const pb::FileDescriptor& file) {
  FileModel model;
  model.proto_path = file.name();
  model.base_path = cpp::StripProto(file.name());
  model.cpp_namespace = absl::StrReplaceAll(file.package(), {{".", "::"}});
  for (int i = 0; i < file.service_count(); ++i) {
    model.services.push_back(BuildService(*file.service(i)));
  }
  NameServices(file, &model.services);
  for (ServiceModel& service : model.services) NameMethods(&service);
  return model;
}

}  // namespace codegen
}  // namespace ipcrpc
