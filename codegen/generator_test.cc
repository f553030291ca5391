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

}  // namespace
}  // namespace codegen
}  // namespace ipcrpc
