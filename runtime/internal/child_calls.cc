#include "runtime/internal/child_calls.h"

#include <algorithm>

#include "runtime/client_context.h"

namespace ipcrpc::internal {

bool ChildCalls::Add(ClientContext* child) {
  internal::MutexLock lock(&mu_);
  if (cancelled_) return false;
  children_.push_back(child);
  return true;
}

void ChildCalls::Remove(ClientContext* child) {
  internal::MutexLock lock(&mu_);
  children_.erase(std::remove(children_.begin(), children_.end(), child), children_.end());
}

void ChildCalls::CancelAll() {
  internal::MutexLock lock(&mu_);
  cancelled_ = true;
  for (ClientContext* child : children_) child->TryCancel();
  children_.clear();
}

}  // namespace ipcrpc::internal
