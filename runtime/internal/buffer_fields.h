// ipcrpc internal: ipcrpc.SharedBuffer fields, between messages and frames.
//
// Sending: CollectSharedBuffers walks a message for SharedBuffer fields (by
// reflection, only for types that can contain one), counts one reference to
// the peer per buffer named, and puts the buffer table (PROTOCOL.md §13) in
// front of the descriptor table in the MESSAGE's trailer. Receiving:
// TakeBufferTable runs when the frame is read (in frame order, without the
// message's schema), removes the table from the payload and resolves it
// into holds; BindSharedBuffers runs when the application parses the
// message: it marks the fields as received and hands the holds to the call.
//
// Thread-safety: functions of their arguments.

#ifndef IPCRPC_RUNTIME_INTERNAL_BUFFER_FIELDS_H_
#define IPCRPC_RUNTIME_INTERNAL_BUFFER_FIELDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "runtime/call_buffers.h"
#include "runtime/internal/fd_fields.h"
#include "runtime/internal/shared_buffer_session.h"

namespace ipcrpc::internal {

// After CollectFds filled *out: adds the shared buffers `message` names.
// `session` is the connection's (null: the peer did not announce shared
// buffers). Before anything is sent: FAILED_PRECONDITION if the message names
// a buffer and the peer does not take them, or it is not a full protobuf
// Message; INVALID_ARGUMENT for a received buffer (forwarding is not
// supported) or one not held in this connection's pool. The references are
// counted at once; out->CommitBuffers() once the message is written,
// otherwise out->RollBackBuffers() (or the next Clear()) uncounts them.
absl::Status CollectSharedBuffers(const google::protobuf::MessageLite& message,
                                  const std::shared_ptr<SharedBufferSession>& session,
                                  absl::string_view peer, OutgoingFds* out);

// For a MESSAGE whose flags have kFlagSharedBuffers: removes the buffer
// table from *payload (which keeps the message bytes and the descriptor
// table of `fd_count` entries) and resolves it. INTERNAL if the table does
// not fit the payload; FAILED_PRECONDITION if this side has no session (it
// did not announce shared buffers); otherwise SharedBufferSession::Resolve's.
absl::Status TakeBufferTable(std::string* payload, size_t fd_count, SharedBufferSession* session,
                             std::vector<ReceivedBuffer>* out);

// After `message` was parsed: each SharedBuffer field whose key is among
// `buffers` gets the key with kReceivedHandleBit, any other non-zero handle
// becomes 0; the holds go to *into (null: released).
void BindSharedBuffers(google::protobuf::MessageLite* message,
                       std::vector<ReceivedBuffer> buffers, CallBuffers* into);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_BUFFER_FIELDS_H_
