#include "tools/cli/json_objects.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ipcrpc::cli {
namespace {

std::vector<std::string> All(JsonObjectSplitter& splitter) {
  std::vector<std::string> objects;
  std::string object;
  while (splitter.Next(&object)) objects.push_back(object);
  return objects;
}

TEST(JsonObjectSplitterTest, LinesAndConcatenatedObjects) {
  JsonObjectSplitter splitter;
  ASSERT_TRUE(splitter.Feed("{\"a\": 1}\n{\"a\": 2}{\"b\": [1, {\"c\": 3}]}\n  \n").ok());
  EXPECT_EQ(All(splitter), (std::vector<std::string>{"{\"a\": 1}", "{\"a\": 2}",
                                                      "{\"b\": [1, {\"c\": 3}]}"}));
  EXPECT_TRUE(splitter.Finish().ok());
}

TEST(JsonObjectSplitterTest, BracesInsideStringsAndEscapes) {
  JsonObjectSplitter splitter;
  const std::string tricky = R"({"s": "} { \" \\", "t": "]"})";
  ASSERT_TRUE(splitter.Feed(tricky).ok());
  EXPECT_EQ(All(splitter), std::vector<std::string>{tricky});
}

TEST(JsonObjectSplitterTest, ObjectsSplitAcrossFeeds) {
  JsonObjectSplitter splitter;
  const std::string text = R"({"name": "a\"b"}{"n": {}})";
  for (char c : text) {
    ASSERT_TRUE(splitter.Feed(std::string(1, c)).ok());
  }
  EXPECT_EQ(All(splitter), (std::vector<std::string>{R"({"name": "a\"b"})", R"({"n": {}})"}));
  EXPECT_TRUE(splitter.Finish().ok());
}

TEST(JsonObjectSplitterTest, NotAnObject) {
  for (const char* text : {"[1]", "42", "\"x\"", "{} x", "}"}) {
    JsonObjectSplitter splitter;
    absl::Status status = splitter.Feed(text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(splitter.Finish().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(JsonObjectSplitterTest, UnfinishedObjectAtTheEnd) {
  JsonObjectSplitter splitter;
  ASSERT_TRUE(splitter.Feed("{\"a\": 1}{\"a\": ").ok());
  EXPECT_EQ(All(splitter).size(), 1u);
  EXPECT_EQ(splitter.Finish().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JsonObjectSplitterTest, EmptyInputIsNoObjects) {
  JsonObjectSplitter splitter;
  ASSERT_TRUE(splitter.Feed(" \n\t").ok());
  EXPECT_TRUE(All(splitter).empty());
  EXPECT_TRUE(splitter.Finish().ok());
}

TEST(JsonObjectSplitterTest, ObjectsOverTheLimitAreRefusedNotBuffered) {
  JsonObjectSplitter splitter(16);
  ASSERT_TRUE(splitter.Feed("{\"a\": 1}").ok());
  absl::Status status = splitter.Feed("{\"a\": \"" + std::string(1000, 'x') + "\"}");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(All(splitter).size(), 1u);
  // Nothing more is accepted after an error.
  EXPECT_FALSE(splitter.Feed("{}").ok());
}

}  // namespace
}  // namespace ipcrpc::cli
