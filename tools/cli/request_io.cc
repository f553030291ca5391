#include "tools/cli/request_io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace ipcrpc::cli {

namespace pb = google::protobuf;

MessageCodec::MessageCodec(const pb::Descriptor* type, bool emit_defaults)
    : type_(type), emit_defaults_(emit_defaults), factory_(type->file()->pool()) {}

absl::StatusOr<ByteBuffer> MessageCodec::FromJson(const std::string& json) {
  std::unique_ptr<pb::Message> message(factory_.GetPrototype(type_)->New());
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  pb::util::Status status = pb::util::JsonStringToMessage(json, message.get(), options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad JSON for ", type_->full_name(), ": ",
                                                   status.message().as_string()));
  }
  return ByteBuffer(message->SerializeAsString());
}

absl::StatusOr<std::string> MessageCodec::ToJson(const ByteBuffer& bytes) {
  std::unique_ptr<pb::Message> message(factory_.GetPrototype(type_)->New());
  if (!message->ParseFromString(bytes.data())) {
    return absl::DataLossError(
        absl::StrCat("the response is not a valid ", type_->full_name(), " message"));
  }
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = emit_defaults_;
  std::string json;
  pb::util::Status status = pb::util::MessageToJsonString(*message, &json, options);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("cannot print the ", type_->full_name(),
                                            " response as JSON: ", status.message().as_string()));
  }
  return json;
}

RequestInput::RequestInput(std::optional<std::string> data, int fd) : fd_(fd) {
  if (data.has_value()) {
    splitter_.Feed(*data).IgnoreError();  // kept by the splitter; Next reports it
    at_end_ = true;
  }
}

absl::StatusOr<bool> RequestInput::Next(std::string* object) {
  while (true) {
    if (splitter_.Next(object)) return true;
    if (at_end_) {
      absl::Status status = splitter_.Finish();
      if (!status.ok()) return status;
      return false;
    }
    if (stopped_) return false;
    // Wait for input in short slices, so that Stop() is seen.
    struct pollfd pfd = {fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll(stdin): ", strerror(errno)));
    }
    if (ready <= 0) continue;
    char buffer[64 * 1024];
    ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::InvalidArgumentError(absl::StrCat("reading stdin: ", strerror(errno)));
    }
    if (n == 0) {
      at_end_ = true;
      continue;
    }
    absl::Status status = splitter_.Feed(absl::string_view(buffer, static_cast<size_t>(n)));
    if (!status.ok()) at_end_ = true;  // objects completed before the error go out first

  }
}

}  // namespace ipcrpc::cli
