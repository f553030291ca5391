#include "runtime/shared_buffer_view.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/internal/shared_buffer_access.h"
#include "runtime/internal/shared_buffer_session.h"

namespace ipcrpc {

SharedBufferWriter::SharedBufferWriter(SharedBufferWriter&& other) noexcept {
  *this = std::move(other);
}

SharedBufferWriter& SharedBufferWriter::operator=(SharedBufferWriter&& other) noexcept {
  if (this != &other) {
    Reset();
    session_ = std::move(other.session_);
    mapping_ = std::move(other.mapping_);
    key_ = std::exchange(other.key_, 0);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedBufferWriter::~SharedBufferWriter() { Reset(); }

void SharedBufferWriter::Reset() {
  if (session_ != nullptr && key_ != 0) session_->DropLocal(key_);
  session_.reset();
  mapping_.reset();
  key_ = 0;
  data_ = nullptr;
  size_ = 0;
}

SharedBufferView::SharedBufferView(std::unique_ptr<internal::ReceivedBuffer> hold)
    : hold_(std::move(hold)) {}
SharedBufferView::SharedBufferView(SharedBufferView&&) noexcept = default;

SharedBufferView& SharedBufferView::operator=(SharedBufferView&& other) noexcept {
  if (this != &other) {
    SharedBufferView old(std::move(*this));  // released (and flushed) below
    hold_ = std::move(other.hold_);
  }
  return *this;
}

SharedBufferView::~SharedBufferView() {
  if (hold_ == nullptr) return;
  std::shared_ptr<internal::SharedBufferSession> session = hold_->session_ptr();
  hold_.reset();  // queues the release
  if (session != nullptr) session->FlushReleases();
}

absl::Span<const uint8_t> SharedBufferView::data() const {
  if (hold_ == nullptr) return {};
  return absl::MakeConstSpan(hold_->data(), hold_->size());
}

std::string SharedBufferView::Snapshot() const {
  absl::Span<const uint8_t> bytes = data();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

namespace {

absl::StatusOr<SharedBufferWriter> AllocateFrom(
    const std::shared_ptr<internal::SharedBufferSession>& session, size_t size) {
  absl::StatusOr<internal::AllocatedBuffer> buffer = session->Allocate(size);
  if (!buffer.ok()) return buffer.status();
  return internal::SharedBufferAccess::MakeWriter(session, std::move(*buffer));
}

}  // namespace

absl::StatusOr<SharedBufferWriter> AllocateSharedBuffer(Channel& channel, size_t size) {
  absl::StatusOr<std::shared_ptr<internal::SharedBufferSession>> session =
      internal::SharedBufferAccess::SessionOf(channel);
  if (!session.ok()) return session.status();
  return AllocateFrom(*session, size);
}

absl::StatusOr<SharedBufferWriter> AllocateSharedBuffer(ServerContext* context, size_t size) {
  const std::shared_ptr<internal::SharedBufferSession>& session = context->buffers().session();
  if (session == nullptr) {
    return absl::FailedPreconditionError(
        "the client of this call does not take shared buffers (it did not announce them in "
        "its HELLO: an older or non-C++ peer, the gRPC bridge, or the feature is off)");
  }
  return AllocateFrom(session, size);
}

}  // namespace ipcrpc
