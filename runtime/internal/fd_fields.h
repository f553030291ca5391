// ipcrpc internal: ipcrpc.FileDescriptor fields, between messages and frames.
//
// The sending side walks a message for its FileDescriptor fields (by
// reflection, only for message types that can contain one: that is looked
// up once per type and thread) and produces the descriptors to attach to
// its MESSAGE frame plus the frame's descriptor table (PROTOCOL.md §10). The
// receiving side splits the table off the payload, and after parsing points
// every field at the local copy of its descriptor, which the call's
// CallFds then owns.
//
// Thread-safety: functions of their arguments.

#ifndef IPCRPC_RUNTIME_INTERNAL_FD_FIELDS_H_
#define IPCRPC_RUNTIME_INTERNAL_FD_FIELDS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/scoped_fd.h"
#include "google/protobuf/message_lite.h"
#include "runtime/call_fds.h"
#include "runtime/internal/shared_buffer_session.h"

namespace ipcrpc::internal {

// The most descriptors one MESSAGE may carry (the kernel's SCM_MAX_FD).
inline constexpr uint32_t kMaxFdsPerMessage = 253;
// Bytes per descriptor-table entry at the end of a MESSAGE payload.
inline constexpr size_t kFdTableEntryBytes = 4;

// What goes with a MESSAGE beside its bytes: the descriptors a message
// names, and the payload's trailer — the shared-buffer table (PROTOCOL.md
// §13, runtime/internal/buffer_fields.h) if `flags` says so, then the
// descriptor table (§10).
struct OutgoingFds {
  absl::InlinedVector<int, 4> fds;  // in the order sent
  std::string table;                // the trailer: [buffer table] u32 LE key (the field's handle) per fd
  uint16_t flags = 0;               // MESSAGE flags the trailer needs (kFlagSharedBuffers)
  // Shared buffers counted as sent to the peer (buffer_fields.h): uncounted
  // by RollBackBuffers or Clear unless CommitBuffers ran (the message went out).
  std::shared_ptr<SharedBufferSession> buffer_session;
  std::vector<uint32_t> buffer_keys;

  bool empty() const { return fds.empty(); }
  bool has_trailer() const { return !table.empty(); }
  // Ready for the next message (rolls back uncommitted buffer references).
  void Clear();
  void CommitBuffers();
  void RollBackBuffers();
};

// Collects the FileDescriptor fields of `message` that name a descriptor.
// `peer_max` is what the peer announced in HELLO (max_fds_per_message).
// Before anything is sent: INVALID_ARGUMENT for more than kMaxFdsPerMessage
// distinct descriptors or one that is not open; FAILED_PRECONDITION when the
// peer accepts none (`peer` names it: a transport description), or the message is not a full protobuf
// Message (a generic ByteBuffer call cannot carry fields the runtime can
// see, so it never carries descriptors); RESOURCE_EXHAUSTED for more than
// `peer_max`.
absl::Status CollectFds(const google::protobuf::MessageLite& message, uint32_t peer_max,
                        absl::string_view peer, OutgoingFds* out);

// Splits a MESSAGE payload that came with `fd_count` descriptors into the
// message bytes and the table. false if it is too short to hold the table.
bool SplitFdTable(absl::string_view payload, size_t fd_count, absl::string_view* message,
                  absl::string_view* table);

// After `message` was parsed from a payload that came with `fds` and
// `table`: points its FileDescriptor fields at the descriptors (a handle
// that is not in the table becomes 0) and hands every descriptor to
// *received (null: they are closed).
void BindFds(google::protobuf::MessageLite* message, absl::string_view table,
             std::vector<ScopedFd> fds, CallFds* received);

// After `message` was parsed from a payload that came with no descriptors:
// every FileDescriptor field in it names none (handle 0), whatever number
// the peer wrote there — so that PeekFd on a received field can never name
// one of this process's own descriptors. Costs a type lookup for messages
// that cannot contain such a field.
void ClearFdHandles(google::protobuf::MessageLite* message);

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_FD_FIELDS_H_
