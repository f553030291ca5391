// ipcrpc CLI: requests in (JSON from -d or stdin), responses out (JSON).
//
// MessageCodec converts between protobuf's JSON mapping and the wire bytes
// of one message type, with a DynamicMessageFactory over the descriptor
// pool the type came from. RequestInput yields the JSON objects of -d, or of
// stdin as they arrive (JsonObjectSplitter), so a streaming call can send
// each request as soon as it is complete.
//
// Thread-safety: MessageCodec is not thread-safe (bench gives each caller
// the bytes, not the codec); RequestInput has one reader, but Stop() may be
// called from another thread.
//
// Example:
//   MessageCodec codec(method->input_type());
//   absl::StatusOr<ByteBuffer> request = codec.FromJson(R"({"name": "x"})");

#ifndef IPCRPC_TOOLS_CLI_REQUEST_IO_H_
#define IPCRPC_TOOLS_CLI_REQUEST_IO_H_

#include <atomic>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "runtime/byte_buffer.h"
#include "tools/cli/json_objects.h"

namespace ipcrpc::cli {

class MessageCodec {
 public:
  // `type` must outlive the codec.
  explicit MessageCodec(const google::protobuf::Descriptor* type, bool emit_defaults = false);

  // INVALID_ARGUMENT naming the type and what is wrong with the JSON.
  absl::StatusOr<ByteBuffer> FromJson(const std::string& json);
  // One line of JSON; DATA_LOSS if the bytes are not a `type`.
  absl::StatusOr<std::string> ToJson(const ByteBuffer& bytes);

 private:
  const google::protobuf::Descriptor* type_;
  const bool emit_defaults_;
  google::protobuf::DynamicMessageFactory factory_;
};

class RequestInput {
 public:
  // From `data` (the -d text) if given, else from file descriptor `fd`.
  RequestInput(std::optional<std::string> data, int fd = 0);

  // The next JSON object: true with *object set, false at the end of the
  // input, or an error (INVALID_ARGUMENT: not JSON objects; stdin unreadable).
  absl::StatusOr<bool> Next(std::string* object);

  // Makes a Next() waiting for input return false soon (another thread).
  void Stop() { stopped_ = true; }

 private:
  JsonObjectSplitter splitter_;
  int fd_;
  bool at_end_ = false;
  std::atomic<bool> stopped_{false};
};

}  // namespace ipcrpc::cli

#endif  // IPCRPC_TOOLS_CLI_REQUEST_IO_H_
