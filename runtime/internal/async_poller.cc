#include "runtime/internal/async_poller.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/thread.h"
#include "runtime/internal/client_connection.h"

namespace ipcrpc::internal {

AsyncPoller::AsyncPoller(ClientConnection& connection, internal::Mutex& mu)
    : connection_(connection), mu_(mu) {}

void AsyncPoller::Add(std::unique_ptr<ClientStream> stream,
                      google::protobuf::MessageLite* response,
                      std::function<void(absl::Status)> done) {
  std::optional<Call> refused;
  absl::Status refusal;
  {
    internal::MutexLock lock(&mu_);
    const uint32_t id = stream->id_;
    const bool finished = stream->done_;
    Call call{std::move(stream), response, std::move(done)};
    if (finished) {
      completed_.push_back(std::move(call));
    } else {
      pending_[id] = std::move(call);
    }
    if (running_) {
      cv_.Signal();
    } else {
      absl::StatusOr<std::thread> poller =
          StartThread([this, keep = connection_.shared_from_this()] { Loop(); });
      if (poller.ok()) {
        running_ = true;
        poller->detach();
      } else {
        // No thread to complete it: this call fails now (its stream is
        // cancelled as it is dropped), the channel stays usable.
        refused = TakeLocked(id);
        refusal = absl::ResourceExhaustedError(absl::StrCat(
            "cannot start the channel's thread for asynchronous calls: ",
            poller.status().message()));
      }
    }
  }
  if (refused.has_value()) {
    refused->stream.reset();
    refused->done(refusal);
    return;
  }
  // The poller may be reading with a later deadline than this call's.
  connection_.framed_.transport().Interrupt();
}

std::optional<AsyncPoller::Call> AsyncPoller::TakeLocked(uint32_t id) {
  auto it = pending_.find(id);
  if (it != pending_.end()) {
    Call call = std::move(it->second);
    pending_.erase(it);
    return call;
  }
  for (auto c = completed_.begin(); c != completed_.end(); ++c) {
    if (c->stream->id_ == id) {
      Call call = std::move(*c);
      completed_.erase(c);
      return call;
    }
  }
  return std::nullopt;
}

void AsyncPoller::StreamFinishedLocked(ClientStream* stream) {
  auto it = pending_.find(stream->id_);
  if (it != pending_.end() && it->second.stream.get() == stream) {
    completed_.push_back(std::move(it->second));
    pending_.erase(it);
    cv_.Signal();
  }
}

void AsyncPoller::WaitLocked(absl::Time deadline) {
  waiting_ = true;
  cv_.WaitWithDeadline(&mu_, deadline);
  waiting_ = false;
}

bool AsyncPoller::WakeIfWaitingLocked() {
  if (!waiting_) return false;
  cv_.Signal();
  return true;
}

void AsyncPoller::ConnectionBrokenLocked() { cv_.SignalAll(); }

void AsyncPoller::Complete(Call call) {
  // The stream is finished and unregistered: nobody else touches it.
  ClientStream& s = *call.stream;
  absl::Status status = s.final_status_;
  if (status.ok()) {
    if (s.inbox_.size() != 1) {
      status = absl::InternalError(
          absl::StrCat("server answered a unary call with ", s.inbox_.size(), " messages"));
    } else if (!s.Parse(s.inbox_.front().payload, std::move(s.inbox_.front().fds),
                        std::move(s.inbox_.front().buffers), call.response)) {
      status = absl::InternalError("could not parse the response message");
    }
  }
  call.stream.reset();
  call.done(status);
}

void AsyncPoller::Loop() {
  ClientConnection& c = connection_;
  internal::MutexLock lock(&mu_);
  for (;;) {
    if (!completed_.empty()) {
      std::vector<Call> completed;
      completed.swap(completed_);
      mu_.Unlock();
      for (Call& call : completed) Complete(std::move(call));
      mu_.Lock();
      continue;
    }
    if (pending_.empty()) {
      running_ = false;
      return;
    }
    absl::Time deadline = absl::InfiniteFuture();
    for (const auto& entry : pending_) {
      deadline = std::min(deadline, entry.second.stream->deadline_);
    }
    bool in_time = c.AwaitLocked(
        nullptr, [this] { return !completed_.empty() || pending_.empty(); }, deadline);
    if (!in_time) {
      absl::Time now = absl::Now();
      std::vector<ClientStream*> expired;
      for (const auto& entry : pending_) {
        if (entry.second.stream->deadline_ <= now) expired.push_back(entry.second.stream.get());
      }
      for (ClientStream* s : expired) {
        AppendFrame(FrameType::kCancel, s->id_, {}, &c.pending_control_);
        c.FinishStreamLocked(s, absl::DeadlineExceededError("deadline exceeded"));
      }
      mu_.Unlock();
      c.FlushPendingControl();
      mu_.Lock();
    }
  }
}

}  // namespace ipcrpc::internal
