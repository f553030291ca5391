// ipcrpc internal: what the runtime reaches inside the shared-buffer handles
// and channels (the one friend of SharedBufferWriter and Channel for this).
//
// Thread-safety: functions of their arguments.

#ifndef IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_ACCESS_H_
#define IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_ACCESS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/channel.h"
#include "runtime/internal/shared_buffer_session.h"
#include "runtime/shared_buffer_view.h"

namespace ipcrpc::internal {

class SharedBufferAccess {
 public:
  static SharedBufferWriter MakeWriter(std::shared_ptr<SharedBufferSession> session,
                                       AllocatedBuffer buffer) {
    SharedBufferWriter w;
    w.session_ = std::move(session);
    w.mapping_ = std::move(buffer.mapping);
    w.key_ = buffer.key;
    w.data_ = buffer.data;
    w.size_ = buffer.size;
    return w;
  }
  // The session of `channel`'s current connection (connecting if needed).
  static absl::StatusOr<std::shared_ptr<SharedBufferSession>> SessionOf(Channel& channel) {
    return channel.SharedBufferSessionForAllocation();
  }
};

}  // namespace ipcrpc::internal

#endif  // IPCRPC_RUNTIME_INTERNAL_SHARED_BUFFER_ACCESS_H_
