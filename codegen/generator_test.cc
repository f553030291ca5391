// Unit tests of what generator.cc prints for hand-made models; the corpus and
// its golden files (tests/codegen) cover whole .proto files.
#include "codegen/generator.h"

#include <string>

#include "codegen/model.h"
#include "gtest/gtest.h"

namespace ipcrpc {
namespace codegen {
namespace {

FileModel MessagesOnly(const std::string& proto_path) {
  FileModel file;
  file.proto_path = proto_path;
  file.base_path = proto_path.substr(0, proto_path.size() - 6);
  return file;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(HeaderGuardTest, IsAValidMacroForAPathStartingWithADigit) {
  const std::string header = GenerateHeader(MessagesOnly("3rd-party/x.proto"));
  EXPECT_TRUE(Contains(header,
                       "#ifndef IPCRPC_INCLUDED_3rd_2dparty_2fx_2eproto\n"
                       "#define IPCRPC_INCLUDED_3rd_2dparty_2fx_2eproto\n"))
      << header;
}

TEST(HeaderGuardTest, SlashAndUnderscoreGiveDifferentGuards) {
  EXPECT_TRUE(Contains(GenerateHeader(MessagesOnly("a/b_c.proto")),
                       "#ifndef IPCRPC_INCLUDED_a_2fb_5fc_2eproto\n"));
  EXPECT_TRUE(Contains(GenerateHeader(MessagesOnly("a_b/c.proto")),
                       "#ifndef IPCRPC_INCLUDED_a_5fb_2fc_2eproto\n"));
}

TEST(CommentTest, MethodCommentsKeepTheirLinesAndDeclarationsWrap) {
  FileModel file = MessagesOnly("p/s.proto");
  file.cpp_namespace = "p";
  ServiceModel service;
  service.full_name = "p.S";
  service.proto_name = service.cpp_name = "S";
  service.table_name = "kSMethods";
  MethodModel method;
  method.proto_name = method.cpp_name = "Get";
  method.wire_name = "/p.S/Get";
  method.request_type = "::p::AVeryLongRequestTypeName";
  method.response_type = "::p::AVeryLongResponseTypeName";
  method.comment = {"First line,", "second line."};
  service.methods.push_back(method);
  file.services.push_back(service);
  const std::string header = GenerateHeader(file);
  EXPECT_TRUE(Contains(header,
                       "    // Get (unary):\n"
                       "    // First line,\n"
                       "    // second line.\n"
                       "    virtual ::absl::Status Get(\n"
                       "        ::ipcrpc::ServerContext* context,\n"
                       "        const ::p::AVeryLongRequestTypeName* request,\n"
                       "        ::p::AVeryLongResponseTypeName* response);\n"))
      << header;
}

}  // namespace
}  // namespace codegen
}  // namespace ipcrpc
