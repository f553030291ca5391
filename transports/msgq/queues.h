// ipcrpc msgq transport: the System V message queues themselves.
//
// Creating a private queue pair for the server, checking a queue the server
// offered before the client trusts it (it exists, has mode 0600, was created
// by and is owned by the server's uid, was never opened by key), asking
// whether a queue still holds stream bytes, removing one, and the kernel's
// msgmax limit with the fragment size derived from it. docs/transports/msgq.md
// explains why each check is there.
//
// Thread-safety: free functions on queue ids; safe from any thread. A queue
// id is a plain int: who removes it is the caller's business (the server's
// pending upgrade until Complete(), then the MsgqTransport).
//
// Example (server):
//   IPCRPC_ASSIGN_OR_RETURN(int id, msgq::CreateQueue());
//   ...
//   msgq::RemoveQueue(id);

#ifndef IPCRPC_TRANSPORTS_MSGQ_QUEUES_H_
#define IPCRPC_TRANSPORTS_MSGQ_QUEUES_H_

#include <sys/msg.h>
#include <sys/types.h>

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ipcrpc {
namespace msgq {

// Where Linux says how large one message may be.
inline constexpr char kMsgmaxPath[] = "/proc/sys/kernel/msgmax";

// Reads a positive number from a /proc/sys file such as kMsgmaxPath.
absl::StatusOr<size_t> ReadKernelLimit(const char* path);

// The fragment size this side sends: the option (0: msgmax), never above
// msgmax nor above what the queue can hold at all.
size_t ClampFragment(size_t requested, size_t msgmax, size_t queue_bytes);

// msgget(IPC_PRIVATE, 0600). RESOURCE_EXHAUSTED when msgmni is reached.
absl::StatusOr<int> CreateQueue();

// IPC_RMID; a queue already removed (by the peer) is not an error. Other
// failures (EPERM: not ours) cannot be acted on and are ignored.
void RemoveQueue(int id);

// Whether the queue still holds stream bytes (wake-ups are empty messages,
// so they do not count). False when the queue is gone.
bool QueueHoldsData(int id);

// Checks a queue the server offered before this process trusts it: it must
// exist, be private to the server's user and never have been opened by key.
// `which` names the direction in messages. Returns the queue's IPC_STAT.
absl::StatusOr<msqid_ds> ValidateOfferedQueue(int id, absl::string_view which,
                                              uid_t server_uid);

}  // namespace msgq
}  // namespace ipcrpc

#endif  // IPCRPC_TRANSPORTS_MSGQ_QUEUES_H_
