#include "runtime/client_context.h"

#include "runtime/codegen/foreign_call.h"
#include "runtime/internal/child_calls.h"
#include "runtime/internal/client_connection.h"
#include "runtime/internal/server_stream.h"
#include "runtime/server_context.h"

namespace ipcrpc {

ClientContext::~ClientContext() {
  // Waits for a parent cancelling this context right now; the parent cannot
  // reach it afterwards.
  if (parent_calls_ != nullptr) parent_calls_->Remove(this);
}

void ClientContext::TryCancel() {
  internal::MutexLock lock(&mu_);
  cancelled_ = true;
  if (stream_ != nullptr) stream_->Cancel();
  if (foreign_cancel_) foreign_cancel_();
}

namespace internal {

bool ForeignCallAccess::SetCancelHook(ClientContext* context, std::function<void()> cancel) {
  MutexLock lock(&context->mu_);
  if (context->cancelled_) return false;
  context->foreign_cancel_ = std::move(cancel);
  return true;
}

void ForeignCallAccess::ClearCancelHook(ClientContext* context) {
  MutexLock lock(&context->mu_);
  context->foreign_cancel_ = nullptr;
}

}  // namespace internal

std::unique_ptr<ClientContext> ClientContext::FromServerContext(
    const ServerContext& server_context) {
  auto child = std::make_unique<ClientContext>();
  child->deadline_ = server_context.deadline_;
  if (server_context.stream_ == nullptr) return child;
  bool parent_cancelled = false;
  child->parent_calls_ = server_context.stream_->child_calls(&parent_cancelled);
  if (!child->parent_calls_->Add(child.get()) || parent_cancelled) child->TryCancel();
  return child;
}

}  // namespace ipcrpc
