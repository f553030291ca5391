// ipcrpc CLI: splitting a stream of text into JSON objects.
//
// `ipcrpc call` reads requests as JSON objects from -d or stdin: one per
// line, or simply one after another ({"a":1}{"a":2}), with any whitespace
// between them. JsonObjectSplitter finds where each object ends without
// parsing it (protobuf's JSON parser does that afterwards): it tracks
// nesting and string literals, byte by byte, as the text arrives, so a
// client stream sends each request as soon as its closing brace is read.
//
// Memory is bounded: an object larger than `max_object_bytes` is an error,
// not buffered.
//
// Thread-safety: not thread-safe; one reader feeds it.
//
// Example:
//   JsonObjectSplitter splitter;
//   splitter.Feed(R"({"name": "a"} {"name": "b"})");
//   std::string object;
//   while (splitter.Next(&object)) Send(object);   // twice
//   absl::Status s = splitter.Finish();            // OK: nothing left over

#ifndef IPCRPC_TOOLS_CLI_JSON_OBJECTS_H_
#define IPCRPC_TOOLS_CLI_JSON_OBJECTS_H_

#include <cstddef>
#include <deque>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ipcrpc::cli {

class JsonObjectSplitter {
 public:
  static constexpr size_t kDefaultMaxObjectBytes = 64 << 20;

  explicit JsonObjectSplitter(size_t max_object_bytes = kDefaultMaxObjectBytes)
      : max_object_bytes_(max_object_bytes) {}

  // Adds text. Returns the first error (INVALID_ARGUMENT: something other
  // than an object at the top level; RESOURCE_EXHAUSTED: an object over the
  // limit); after an error nothing more is accepted.
  absl::Status Feed(absl::string_view text);

  // The next complete object, if there is one.
  bool Next(std::string* object);

  // At the end of the input: OK if no object was left unfinished (and no
  // error happened), else INVALID_ARGUMENT.
  absl::Status Finish() const;

 private:
  const size_t max_object_bytes_;
  absl::Status error_;
  std::deque<std::string> complete_;
  std::string current_;   // the object being read
  int depth_ = 0;         // nesting of {} and [] inside current_
  bool in_string_ = false;
  bool escaped_ = false;  // the previous character in a string was '\'
  size_t offset_ = 0;     // characters consumed so far, for messages
};

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_JSON_OBJECTS_H_
