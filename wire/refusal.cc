#include "wire/refusal.h"

#include "absl/strings/str_cat.h"
#include "proto/ipcrpc/wire.pb.h"
#include "wire/frame.h"

namespace ipcrpc::internal {

void AppendRefusalFrame(const absl::Status& status, std::string* out) {
  wire::GoAway goaway;
  goaway.set_last_stream_id(0);
  goaway.set_code(static_cast<int32_t>(status.code()));
  goaway.set_reason(std::string(status.message()));
  AppendProtoFrame(FrameType::kGoAway, 0, goaway, goaway.ByteSizeLong(), out);
}

absl::Status RefusalStatus(absl::string_view goaway_payload, absl::string_view who) {
  wire::GoAway goaway;
  if (!goaway.ParseFromArray(goaway_payload.data(), static_cast<int>(goaway_payload.size()))) {
    return absl::UnavailableError(absl::StrCat(who, " closed the connection (malformed GOAWAY)"));
  }
  int code = goaway.code();
  if (code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnavailableError(absl::StrCat(who, " closed the connection: ", goaway.reason()));
  }
  return absl::Status(static_cast<absl::StatusCode>(code),
                      absl::StrCat(who, " refused the connection: ", goaway.reason()));
}

}  // namespace ipcrpc::internal
