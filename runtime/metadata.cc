#include "runtime/metadata.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ipcrpc {

absl::Status ValidateMetadataKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("metadata key is empty");
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metadata key \"", key,
          "\" has a character outside [a-z0-9_.-] (keys are lowercase)"));
    }
  }
  if (absl::StartsWith(key, "ipcrpc-")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata key \"", key, "\" uses the reserved prefix \"ipcrpc-\""));
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc
