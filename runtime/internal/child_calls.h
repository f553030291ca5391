// ipcrpc internal: the client calls a server call makes on its behalf.
//
// ClientContext::FromServerContext registers the new ClientContext here, in
// the registry of the server call it was made from; when the server call is
// cancelled (the client cancelled, its connection ended, or the server
// cancelled it at shutdown), the server calls CancelAll(), which cancels
// every child still registered (ClientContext::TryCancel: the child call
// ends with CANCELLED) and every child registered later. Deadlines need no
// event: a child starts with its parent's deadline.
//
// Thread-safety: thread-safe. CancelAll calls TryCancel with the registry's
// lock held, and a child's destructor removes it under the same lock, so a
// child is never cancelled after (or while) it is destroyed. Lock order:
// ChildCalls, then ClientContext, then the child's client connection.
//
// Ownership: shared by the server call (ServerStream) and by each child
// ClientContext, so parent and children may end in either order. Children
// are not owned.

#ifndef IPCRPC_RUNTIME_INTERNAL_CHILD_CALLS_H_
#define IPCRPC_RUNTIME_INTERNAL_CHILD_CALLS_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace ipcrpc {
class ClientContext;

namespace internal {

class ChildCalls {
 public:
  // Registers `child`; false if the parent was cancelled already (the child
  // is then not registered: the caller cancels it).
  bool Add(ClientContext* child);
  // Unregisters `child` (from its destructor); waits for a CancelAll that is
  // cancelling it.
  void Remove(ClientContext* child);
  // Cancels every registered child, and refuses children added later.
  void CancelAll();

 private:
  internal::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<ClientContext*> children_ ABSL_GUARDED_BY(mu_);  // few
};

}  // namespace internal
}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_INTERNAL_CHILD_CALLS_H_
