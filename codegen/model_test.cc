#include "codegen/model.h"

#include <string>
#include <vector>

#include "google/protobuf/compiler/parser.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"

namespace ipcrpc {
namespace codegen {
namespace {

namespace pb = ::google::protobuf;

class FailOnError final : public pb::io::ErrorCollector,
                          public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column,
                const std::string& message) override {
    ADD_FAILURE() << line << ":" << column << ": " << message;
  }
  void AddError(const std::string& filename, const std::string& element_name,
                const pb::Message*, ErrorLocation,
                const std::string& message) override {
    ADD_FAILURE() << filename << ": " << element_name << ": " << message;
  }
};

// Parses .proto text into a pool, as protoc would, comments included.
class ModelTest : public ::testing::Test {
 protected:
  FileModel Build(const std::string& name, const std::string& text) {
    pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
    FailOnError errors;
    pb::io::Tokenizer tokenizer(&input, &errors);
    pb::FileDescriptorProto proto;
    pb::compiler::Parser parser;
    parser.RecordErrorsTo(&errors);
    EXPECT_TRUE(parser.Parse(&tokenizer, &proto));
    proto.set_name(name);
    const pb::FileDescriptor* file =
        pool_.BuildFileCollectingErrors(proto, &errors);
    return file ? BuildFileModel(*file) : FileModel();
  }

  pb::DescriptorPool pool_;
};

std::vector<std::string> CppNames(const ServiceModel& service) {
  std::vector<std::string> names;
  for (const MethodModel& m : service.methods) names.push_back(m.cpp_name);
  return names;
}

TEST(NamingTest, KeywordsAndTakenNamesGetUnderscores) {
  EXPECT_TRUE(IsCppKeyword("delete"));
  EXPECT_TRUE(IsCppKeyword("co_await"));
  EXPECT_TRUE(IsCppKeyword("NULL"));
  EXPECT_FALSE(IsCppKeyword("Delete"));
  EXPECT_EQ(MakeUnique("Get", {}), "Get");
  EXPECT_EQ(MakeUnique("class", {}), "class_");
  EXPECT_EQ(MakeUnique("class", {"class_"}), "class__");
  EXPECT_EQ(MakeUnique("Stub", {"Stub", "Stub_"}), "Stub__");
}

TEST_F(ModelTest, ResolvesWireNamesKindsAndTypes) {
  FileModel file = Build("x/y.proto", R"(
    syntax = "proto3";
    package a.b;
    message Outer { message Inner {} }
    message M {}
    service S {
      rpc U(Outer.Inner) returns (M);
      rpc SS(M) returns (stream M);
      rpc CS(stream M) returns (M);
      rpc B(stream M) returns (stream Outer);
    })");
  EXPECT_EQ(file.proto_path, "x/y.proto");
  EXPECT_EQ(file.base_path, "x/y");
  EXPECT_EQ(file.cpp_namespace, "a::b");
  ASSERT_EQ(file.services.size(), 1u);
  const ServiceModel& s = file.services[0];
  EXPECT_EQ(s.full_name, "a.b.S");
  EXPECT_EQ(s.cpp_name, "S");
  EXPECT_EQ(s.table_name, "kSMethods");
  ASSERT_EQ(s.methods.size(), 4u);
  EXPECT_EQ(s.methods[0].wire_name, "/a.b.S/U");
  EXPECT_EQ(s.methods[0].request_type, "::a::b::Outer_Inner");
  EXPECT_EQ(s.methods[0].response_type, "::a::b::M");
  EXPECT_EQ(s.methods[0].kind, MethodKind::kUnary);
  EXPECT_EQ(s.methods[1].kind, MethodKind::kServerStreaming);
  EXPECT_EQ(s.methods[2].kind, MethodKind::kClientStreaming);
  EXPECT_EQ(s.methods[3].kind, MethodKind::kBidiStreaming);
}

TEST_F(ModelTest, KeepsLeadingCommentsLineByLine) {
  FileModel file = Build("c.proto", R"(
    syntax = "proto3";
    message M {}
    // Says
    //   hello. \
    service S {
      // Detached comments are not used.

      /* Block comments
         are. */
      rpc Hi(M) returns (M);
      rpc Bye(M) returns (M);
    })");
  ASSERT_EQ(file.services.size(), 1u);
  const ServiceModel& s = file.services[0];
  EXPECT_EQ(s.comment, (std::vector<std::string>{"Says", "  hello."}));
  EXPECT_EQ(s.methods[0].comment,
            (std::vector<std::string>{"Block comments", "are."}));
  EXPECT_TRUE(s.methods[1].comment.empty());
  EXPECT_EQ(s.methods[0].wire_name, "/S/Hi");  // no package
}

TEST(CommentLinesTest, SplitsWhereCppEndsALineComment) {
  EXPECT_EQ(CommentLines(" a\n b\r\n c\r d\n"),
            (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(CommentLines("\n\n a\n\n   b  \n\n"),
            (std::vector<std::string>{"a", "", "  b"}));
  EXPECT_TRUE(CommentLines(" \n\t\n").empty());
}

TEST(CommentLinesTest, NothingCanSpliceOrEscapeTheComment) {
  // A backslash (with or without spaces after it) would splice the next
  // generated line into the comment.
  EXPECT_EQ(CommentLines(" a \\\n b\\  \n c\\\\"),
            (std::vector<std::string>{"a", "b", "c"}));
  // Trigraphs, `??/` above all, are broken up wherever they are.
  // (The input is spelled with `?\?` so that this file has no trigraphs.)
  EXPECT_EQ(CommentLines(" what?\?/\n ?\?= ?\?( ok? ?\?\?/"),
            (std::vector<std::string>{"what?\\?/", "?\\?= ?\\?( ok? ??\\?/"}));
  // Other control characters become spaces; tabs stay.
  EXPECT_EQ(CommentLines(" a\fb\vc\td"),
            (std::vector<std::string>{"a b c\td"}));
}

TEST(FilenameIdentifierTest, EscapesLikeProtobufIncludeGuards) {
  EXPECT_EQ(FilenameIdentifier("a/b_c.proto"), "a_2fb_5fc_2eproto");
  EXPECT_EQ(FilenameIdentifier("a_b/c.proto"), "a_5fb_2fc_2eproto");
  EXPECT_EQ(FilenameIdentifier("3rd-party/x.proto"),
            "3rd_2dparty_2fx_2eproto");
  EXPECT_EQ(FilenameIdentifier("t\tb"), "t_09b");  // always two hex digits
}

TEST_F(ModelTest, RenamesOnlyMethodsCppForbids) {
  FileModel file = Build("m.proto", R"(
    syntax = "proto3";
    package p;
    message M {}
    service Svc {
      rpc new(M) returns (M);
      rpc new_(M) returns (M);
      rpc Svc(M) returns (M);
      rpc kSvcMethods(M) returns (M);
      rpc AddMethod(M) returns (M);
      rpc AsyncGet(M) returns (M);
      rpc Get(M) returns (M);
      rpc Stub(M) returns (M);
      rpc StubInterface(M) returns (stream M);
      rpc Service(stream M) returns (M);
      rpc async(M) returns (M);
      rpc async_interface(M) returns (M);
      rpc channel_(M) returns (M);
      rpc NewStub(M) returns (M);
    })");
  ASSERT_EQ(file.services.size(), 1u);
  const ServiceModel& s = file.services[0];
  EXPECT_EQ(CppNames(s),
            (std::vector<std::string>{
                "new__", "new_", "Svc", "kSvcMethods", "AddMethod", "AsyncGet",
                "Get", "Stub_", "StubInterface_", "Service_", "async_",
                "async_interface_", "channel__", "NewStub"}));
  // Wire names keep the .proto names.
  EXPECT_EQ(s.methods[0].wire_name, "/p.Svc/new");
  EXPECT_EQ(s.methods[7].wire_name, "/p.Svc/Stub");
}

TEST_F(ModelTest, RefusesGenericServices) {
  pb::FileDescriptorProto proto;
  proto.set_name("g/s.proto");
  proto.set_package("p");
  proto.add_message_type()->set_name("M");
  pb::ServiceDescriptorProto* service = proto.add_service();
  service->set_name("S");
  pb::MethodDescriptorProto* method = service->add_method();
  method->set_name("Get");
  method->set_input_type(".p.M");
  method->set_output_type(".p.M");
  const pb::FileDescriptor* plain = pool_.BuildFile(proto);
  ASSERT_NE(plain, nullptr);
  EXPECT_TRUE(CheckSupported(*plain).ok());

  proto.set_name("g/generic.proto");
  proto.set_package("q");
  proto.mutable_service(0)->mutable_method(0)->set_input_type(".q.M");
  proto.mutable_service(0)->mutable_method(0)->set_output_type(".q.M");
  proto.mutable_options()->set_cc_generic_services(true);
  const pb::FileDescriptor* generic = pool_.BuildFile(proto);
  ASSERT_NE(generic, nullptr);
  absl::Status status = CheckSupported(*generic);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "g/generic.proto: service q.S: option cc_generic_services = true "
            "makes protoc's C++ generator declare a class of the same name "
            "(q::S), which is the class protoc-gen-ipcrpc generates. Remove "
            "the option or set it to false; ipcrpc does not use protobuf's "
            "generic services.");

  // A file without services may keep the option.
  pb::FileDescriptorProto messages_only;
  messages_only.set_name("g/m.proto");
  messages_only.mutable_options()->set_cc_generic_services(true);
  const pb::FileDescriptor* file = pool_.BuildFile(messages_only);
  ASSERT_NE(file, nullptr);
  EXPECT_TRUE(CheckSupported(*file).ok());
}

TEST_F(ModelTest, RenamesServicesThatClash) {
  Build("p/dep.proto", R"(
    syntax = "proto3";
    package p;
    message Dep { message Nested {} enum Kind { KIND_A = 0; } })");
  FileModel file = Build("p/s.proto", R"(
    syntax = "proto3";
    package p;
    import "p/dep.proto";
    service Stub {}
    service Stub_ {}
    service StubInterface {}
    service class {}
    service Dep_Nested {}
    service Dep_Kind_KIND_A {}
    service Table {}
    service kTableMethods {}
    service std {})");
  ASSERT_EQ(file.services.size(), 9u);
  std::vector<std::string> classes, tables;
  for (const ServiceModel& s : file.services) {
    classes.push_back(s.cpp_name);
    tables.push_back(s.table_name);
  }
  EXPECT_EQ(classes, (std::vector<std::string>{
                         "Stub__", "Stub_", "StubInterface_", "class_",
                         "Dep_Nested_", "Dep_Kind_KIND_A_", "Table",
                         "kTableMethods", "std"}));
  EXPECT_EQ(tables[6], "kTableMethods_");  // tables yield to classes
  EXPECT_EQ(tables[3], "kclassMethods");
}

TEST_F(ModelTest, WithoutAPackageNamespacesOfGeneratedCodeAreTaken) {
  FileModel file = Build("g.proto", R"(
    syntax = "proto3";
    service std {}
    service ipcrpc {}
    service Other {})");
  ASSERT_EQ(file.services.size(), 3u);
  EXPECT_EQ(file.cpp_namespace, "");
  EXPECT_EQ(file.services[0].cpp_name, "std_");
  EXPECT_EQ(file.services[1].cpp_name, "ipcrpc_");
  EXPECT_EQ(file.services[2].cpp_name, "Other");
}

}  // namespace
}  // namespace codegen
}  // namespace ipcrpc
