#include "tools/cli/json_objects.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc::cli {

absl::Status JsonObjectSplitter::Feed(absl::string_view text) {
  for (char c : text) {
    if (!error_.ok()) return error_;
    ++offset_;
    if (depth_ == 0) {  // between objects
      if (absl::ascii_isspace(static_cast<unsigned char>(c))) continue;
      if (c != '{') {
        error_ = absl::InvalidArgumentError(absl::StrCat(
            "expected a JSON object ('{') at character ", offset_, ", found '",
            absl::CEscape(std::string(1, c)), "'"));
        return error_;
      }
      current_.clear();
    }
    current_.push_back(c);
    if (current_.size() > max_object_bytes_) {
      error_ = absl::ResourceExhaustedError(
          absl::StrCat("a JSON object is larger than ", max_object_bytes_, " bytes"));
      return error_;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        break;
      case '{':
      case '[':
        ++depth_;
        break;
      case '}':
      case ']':
        if (--depth_ == 0) complete_.push_back(std::move(current_));
        break;
      default:
        break;
    }
  }
  return error_;
}

bool JsonObjectSplitter::Next(std::string* object) {
  if (complete_.empty()) return false;
  *object = std::move(complete_.front());
  complete_.pop_front();
  return true;
}

absl::Status JsonObjectSplitter::Finish() const {
  if (!error_.ok()) return error_;
  if (depth_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the input ends inside a JSON object: ", absl::CEscape(current_.substr(
                                                                  0, 80))));
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc::cli
