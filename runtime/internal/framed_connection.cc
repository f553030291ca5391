#include "runtime/internal/framed_connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"

namespace ipcrpc::internal {

FramedConnection::FramedConnection(std::unique_ptr<Transport> transport,
                                   size_t max_receive_message)
    : transport_(std::move(transport)), reader_(*transport_, max_receive_message) {}

absl::Status FramedConnection::Write(absl::string_view frames, absl::Time deadline) {
  internal::MutexLock lock(&write_mu_);
  absl::string_view chunks[] = {frames};
  absl::Status status = transport_->Write(chunks, deadline);
  if (!status.ok()) transport_->Shutdown();
  return status;
}

absl::StatusOr<wire::Hello> FramedConnection::ExchangeHello(const wire::Hello& ours,
                                                            absl::Time deadline) {
  std::string out;
  AppendProtoFrame(FrameType::kHello, 0, ours, ours.ByteSizeLong(), &out);
  IPCRPC_RETURN_IF_ERROR(Write(out, deadline));
  Frame frame;
  IPCRPC_RETURN_IF_ERROR(reader_.ReadFrame(&frame, deadline));
  if (frame.header.type != FrameType::kHello || frame.header.stream_id != 0) {
    return absl::DataLossError(absl::StrCat(
        transport_->description(), ": expected HELLO as the first frame, got type ",
        static_cast<int>(frame.header.type)));
  }
  wire::Hello theirs;
  if (frame.oversized || !theirs.ParseFromString(frame.payload)) {
    return absl::DataLossError(
        absl::StrCat(transport_->description(), ": malformed HELLO frame"));
  }
  if (theirs.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        transport_->description(), ": peer speaks protocol version ",
        theirs.protocol_version(), ", this side speaks ", kProtocolVersion));
  }
  if (theirs.max_message_size() == 0) theirs.set_max_message_size(kDefaultMaxMessage);
  if (theirs.initial_stream_window() == 0) {
    theirs.set_initial_stream_window(kDefaultStreamWindow);
  }
  return theirs;
}

void MetadataToWire(const Metadata& metadata,
                    google::protobuf::RepeatedPtrField<wire::MetadataEntry>* out) {
  for (const auto& [key, value] : metadata) {
    wire::MetadataEntry* e = out->Add();
    e->set_key(key);
    e->set_value(value);
  }
}

absl::Status MetadataFromWire(
    const google::protobuf::RepeatedPtrField<wire::MetadataEntry>& entries,
    Metadata* out) {
  for (const wire::MetadataEntry& e : entries) {
    // Reserved "ipcrpc-" keys may come from newer peers; keep only valid ones.
    if (e.key().empty()) return absl::DataLossError("metadata entry with an empty key");
    out->emplace(e.key(), e.value());
  }
  return absl::OkStatus();
}

absl::Status ValidateMetadata(const Metadata& metadata) {
  for (const auto& entry : metadata) {
    IPCRPC_RETURN_IF_ERROR(ValidateMetadataKey(entry.first));
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc::internal
