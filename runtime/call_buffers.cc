#include "runtime/call_buffers.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/internal/shared_buffer_session.h"
#include "runtime/shared_buffer_view.h"
#include "wire/shared_buffer_format.h"

namespace ipcrpc {

struct CallBuffers::State {
  std::vector<internal::ReceivedBuffer> received;
  std::vector<SharedBufferWriter> kept;
};

CallBuffers::CallBuffers() = default;

CallBuffers::~CallBuffers() {
  std::shared_ptr<internal::SharedBufferSession> flush;
  std::unique_ptr<State> state;
  {
    internal::MutexLock lock(&mu_);
    if (state_ == nullptr) return;
    state = std::move(state_);
  }
  for (const internal::ReceivedBuffer& b : state->received) {
    if (b.session_ptr() != nullptr) flush = b.session_ptr();
  }
  state.reset();  // releases queued, kept writers dropped
  if (flush != nullptr) flush->FlushReleases();
}

CallBuffers::State& CallBuffers::StateLocked() {
  if (state_ == nullptr) {
    state_ = std::make_unique<State>();
    has_state_.store(true, std::memory_order_release);
  }
  return *state_;
}

absl::StatusOr<SharedBufferView> CallBuffers::Take(uint32_t handle) {
  if (handle == 0) {
    return absl::NotFoundError("the SharedBuffer field names no buffer (handle 0)");
  }
  if ((handle & internal::kReceivedHandleBit) == 0) {
    return absl::NotFoundError(absl::StrCat(
        "the SharedBuffer field names buffer ", handle,
        " of this process (set by SetSharedBuffer), not one received with the call"));
  }
  const uint32_t key = handle & ~internal::kReceivedHandleBit;
  internal::MutexLock lock(&mu_);
  if (state_ != nullptr) {
    for (internal::ReceivedBuffer& b : state_->received) {
      if (b.key() == key && b.data() != nullptr) {
        return SharedBufferView(std::make_unique<internal::ReceivedBuffer>(std::move(b)));
      }
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "shared buffer ", key, " is not among those received with the call's last message "
      "(taken already, or released when a later message was read or the call finished)"));
}

size_t CallBuffers::received() const {
  internal::MutexLock lock(&mu_);
  size_t n = 0;
  if (state_ != nullptr) {
    for (const internal::ReceivedBuffer& b : state_->received) n += b.data() != nullptr ? 1 : 0;
  }
  return n;
}

void CallBuffers::Keep(SharedBufferWriter writer) {
  internal::MutexLock lock(&mu_);
  StateLocked().kept.push_back(std::move(writer));
}

void CallBuffers::Replace(std::vector<internal::ReceivedBuffer> buffers) {
  if (buffers.empty() && !has_state_.load(std::memory_order_acquire)) return;
  std::vector<internal::ReceivedBuffer> old;
  {
    internal::MutexLock lock(&mu_);
    if (state_ == nullptr && buffers.empty()) return;
    old.swap(StateLocked().received);
    state_->received = std::move(buffers);
  }
  std::shared_ptr<internal::SharedBufferSession> flush;
  for (const internal::ReceivedBuffer& b : old) {
    if (b.session_ptr() != nullptr) flush = b.session_ptr();
  }
  old.clear();  // queues their releases
  if (flush != nullptr) flush->FlushReleases();
}

void CallBuffers::DropReceived() {
  if (!has_state_.load(std::memory_order_acquire)) return;  // never held any
  std::vector<internal::ReceivedBuffer> old;
  {
    internal::MutexLock lock(&mu_);
    if (state_ == nullptr) return;
    old.swap(state_->received);
  }
}

void CallBuffers::set_session(std::shared_ptr<internal::SharedBufferSession> session) {
  session_ = std::move(session);
}

}  // namespace ipcrpc
