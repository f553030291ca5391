#include "runtime/internal/buffer_fields.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "runtime/internal/message_walk.h"
#include "wire/frame.h"
#include "wire/shared_buffer_format.h"

namespace ipcrpc::internal {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr absl::string_view kSharedBufferType = "ipcrpc.SharedBuffer";

const FieldDescriptor* HandleField(const Message& m) {
  return m.GetDescriptor()->FindFieldByNumber(1);
}

}  // namespace

absl::Status CollectSharedBuffers(const google::protobuf::MessageLite& lite,
                                  const std::shared_ptr<SharedBufferSession>& session,
                                  absl::string_view peer, OutgoingFds* out) {
  const auto* message = dynamic_cast<const Message*>(&lite);
  if (message == nullptr || !CanContainType(message->GetDescriptor(), kSharedBufferType)) {
    return absl::OkStatus();
  }
  std::vector<uint32_t> handles;
  ForEachOfType(message, kSharedBufferType, [&](const Message* field) {
    const uint32_t handle = field->GetReflection()->GetUInt32(*field, HandleField(*field));
    if (handle == 0) return;
    for (uint32_t h : handles) {
      if (h == handle) return;  // named twice: one reference
    }
    handles.push_back(handle);
  });
  if (handles.empty()) return absl::OkStatus();
  if (session == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the peer at ", peer, " does not take shared buffers (it did not announce them in its "
        "HELLO: an older or non-C++ peer, the gRPC bridge, or the feature is off)"));
  }
  if (handles.size() > kMaxBuffersPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat("a message names ", handles.size(),
                                                   " shared buffers; at most ",
                                                   kMaxBuffersPerMessage, " per message"));
  }
  std::vector<BufferReference> refs;
  refs.reserve(handles.size());
  out->buffer_session = session;
  for (uint32_t handle : handles) {
    if (handle & kReceivedHandleBit) {
      out->RollBackBuffers();
      return absl::InvalidArgumentError(
          "a SharedBuffer field names a buffer received from a peer; sending it on is not "
          "supported (copy it into a buffer of your own)");
    }
    BufferReference ref;
    absl::Status added = session->AddRemote(handle, &ref);
    if (!added.ok()) {
      out->RollBackBuffers();
      return added;
    }
    out->buffer_keys.push_back(handle);
    refs.push_back(ref);
  }
  std::string trailer;
  EncodeBufferTable(refs, &trailer);
  trailer += out->table;  // the descriptor table stays last
  out->table = std::move(trailer);
  out->flags |= kFlagSharedBuffers;
  return absl::OkStatus();
}

absl::Status TakeBufferTable(std::string* payload, size_t fd_count, SharedBufferSession* session,
                             std::vector<ReceivedBuffer>* out) {
  const size_t fd_table = fd_count * kFdTableEntryBytes;
  if (payload->size() < fd_table) {
    return absl::InternalError("MESSAGE too short for its descriptor table");
  }
  absl::string_view message;
  std::vector<BufferReference> refs;
  if (!DecodeBufferTable(absl::string_view(*payload).substr(0, payload->size() - fd_table),
                         &message, &refs)) {
    return absl::InternalError(
        "MESSAGE with a shared-buffer table that does not fit its payload (PROTOCOL.md §13)");
  }
  if (session == nullptr) {
    return absl::FailedPreconditionError(
        "the peer sent shared buffers, which this side did not announce (PROTOCOL.md §13)");
  }
  absl::Status resolved = session->Resolve(refs, out);
  // message bytes | descriptor table: the table is cut out (only the small
  // descriptor table moves).
  const size_t table_bytes = payload->size() - fd_table - message.size();
  payload->erase(message.size(), table_bytes);
  return resolved;
}

void BindSharedBuffers(google::protobuf::MessageLite* lite, std::vector<ReceivedBuffer> buffers,
                       CallBuffers* into) {
  auto* message = dynamic_cast<Message*>(lite);
  if (message != nullptr && CanContainType(message->GetDescriptor(), kSharedBufferType)) {
    ForEachOfType(message, kSharedBufferType, [&](Message* field) {
      const FieldDescriptor* handle_field = HandleField(*field);
      const uint32_t key = field->GetReflection()->GetUInt32(*field, handle_field);
      if (key == 0) return;
      uint32_t local = 0;
      for (const ReceivedBuffer& b : buffers) {
        if (b.key() == key) {
          local = key | kReceivedHandleBit;
          break;
        }
      }
      field->GetReflection()->SetUInt32(field, handle_field, local);
    });
  }
  if (into != nullptr) {
    into->Replace(std::move(buffers));
    return;
  }
  if (buffers.empty()) return;
  std::shared_ptr<SharedBufferSession> session = buffers.front().session_ptr();
  buffers.clear();  // released
  if (session != nullptr) session->FlushReleases();
}

}  // namespace ipcrpc::internal
