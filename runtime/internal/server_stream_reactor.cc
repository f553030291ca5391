// ServerStream, the reactor's side (runtime/server_callback.h): a call
// served by a callback method. Its operations are recorded under the
// connection's mutex and carried out, with their reactions, by whichever
// thread has claimed the right to run them (Reactor::running): the thread
// that ran the method, the reading thread that applied the frame that made
// one due, the deadline timer's pool task, or a pool task scheduled by a
// Start* call made outside a reaction. So reactions of one call never run
// concurrently, and never inside the call that started their operation.

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "runtime/internal/server_connection.h"
#include "runtime/internal/server_core.h"
#include "runtime/internal/server_stream.h"
#include "runtime/server_callback.h"

namespace ipcrpc::internal {

void ServerStream::StartReactor(absl::FunctionRef<ServerReactor*()> make,
                                std::shared_ptr<void> state,
                                const google::protobuf::MessageLite* response) {
  ServerConnection& c = *connection_;
  {
    internal::MutexLock lock(&c.mu_);
    reactor_ = std::make_unique<Reactor>();
    reactor_->running = true;  // this thread runs the reactions once the method returns
    reactor_->state = std::move(state);
    reactor_->response = response;
  }
  reactor_started_.store(true, std::memory_order_release);
  ReactorAccess::SetReactorCallIfUnset(context_, this);
  ServerReactor* made;
  {
    ScopedReactorBinding binding(this);
    made = make();
  }
  if (made == nullptr) {
    {
      internal::MutexLock lock(&c.mu_);
      reactor_->done = true;
      reactor_->running = false;
    }
    Finish(absl::InternalError(absl::StrCat("callback method ", context_.method(),
                                            " returned no reactor")),
           nullptr);
    return;
  }
  ReactorAccess::BindIfUnbound(made, this);  // made on another thread
  std::optional<DeadlineTimer::Id> deadline_task;
  absl::Status timer_status;
  if (context_.deadline_ != absl::InfiniteFuture()) {
    std::weak_ptr<ServerStream> weak = weak_from_this();
    absl::StatusOr<DeadlineTimer::Id> added =
        c.core_.deadline_timer().Add(context_.deadline_, [weak] {
          if (std::shared_ptr<ServerStream> stream = weak.lock()) stream->DeadlineReached();
        });
    if (added.ok()) {
      deadline_task = *added;
    } else {
      timer_status = added.status();
    }
  }
  {
    internal::MutexLock lock(&c.mu_);
    reactor_->reactor = made;
    reactor_->deadline_task = deadline_task;
    // Without the timer nothing would tell the reactor of its deadline: the
    // call fails now instead.
    if (!timer_status.ok() && forced_status_.ok()) forced_status_ = timer_status;
  }
  RunReactions();
}

ServerStream::ReactorStep ServerStream::NextReactorStepLocked(bool take) {
  Reactor& r = *reactor_;
  if (r.done || r.reactor == nullptr) return ReactorStep::kNone;
  const bool call_cancelled = cancelled();
  const bool over = finished_ || call_cancelled || !forced_status_.ok();
  if (call_cancelled && !r.cancel_reported && !finished_) {
    if (take) r.cancel_reported = true;
    return ReactorStep::kCancel;
  }
  if (r.headers_requested) {
    if (take) r.headers_requested = false;
    return ReactorStep::kHeaders;
  }
  if (r.read_into != nullptr && (!inbox_.empty() || half_closed_ || reads_ended_ || over)) {
    return ReactorStep::kRead;
  }
  if (r.write_from != nullptr && (send_window_ > 0 || over)) {
    return r.write_then_finish ? ReactorStep::kWriteAndFinish : ReactorStep::kWrite;
  }
  if (r.finish_requested && !finished_ && r.write_from == nullptr) return ReactorStep::kFinish;
  if (finished_ && r.read_into == nullptr && r.write_from == nullptr) {
    if (take) r.done = true;
    return ReactorStep::kDone;
  }
  return ReactorStep::kNone;
}

bool ServerStream::ClaimReactionsLocked() {
  if (reactor_ == nullptr || reactor_->running) return false;
  if (NextReactorStepLocked(/*take=*/false) == ReactorStep::kNone) return false;
  reactor_->running = true;
  return true;
}

void ServerStream::ScheduleReactions() {
  connection_->core_.pool().ScheduleUnbounded(
      [stream = shared_from_this()] { stream->RunReactions(); });
}

void ServerStream::DeadlineReached() {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

void ServerStream::RunReactions() {
  ServerConnection& c = *connection_;
  // The connection lets go of the stream when it finishes; OnDone comes after.
  std::shared_ptr<ServerStream> keep = shared_from_this();
  for (;;) {
    ReactorStep step;
    ServerReactor* reactor;
    google::protobuf::MessageLite* read_into = nullptr;
    const google::protobuf::MessageLite* write_from = nullptr;
    const google::protobuf::MessageLite* response = nullptr;
    absl::Status status;
    std::shared_ptr<void> state;
    std::optional<DeadlineTimer::Id> deadline_task;
    {
      internal::MutexLock lock(&c.mu_);
      Reactor& r = *reactor_;
      step = NextReactorStepLocked(/*take=*/true);
      reactor = r.reactor;
      switch (step) {
        case ReactorStep::kNone:
          r.running = false;
          return;
        case ReactorStep::kRead:
          read_into = std::exchange(r.read_into, nullptr);
          break;
        case ReactorStep::kWrite:
          write_from = std::exchange(r.write_from, nullptr);
          break;
        case ReactorStep::kWriteAndFinish:
          write_from = std::exchange(r.write_from, nullptr);
          r.write_then_finish = false;
          status = r.finish_status;
          break;
        case ReactorStep::kFinish:
          status = r.finish_status;
          response = r.response;
          reads_ended_ = true;  // requests still queued are not read
          break;
        case ReactorStep::kDone:
          r.reactor = nullptr;
          state = std::move(r.state);
          deadline_task = r.deadline_task;
          break;
        default:
          break;
      }
    }
    switch (step) {
      case ReactorStep::kCancel:
        reactor->OnCancel();
        break;
      case ReactorStep::kHeaders:
        ReactorAccess::OnSendInitialMetadataDone(reactor, SendInitialMetadata());
        break;
      case ReactorStep::kRead:
        ReactorAccess::OnReadDone(reactor, Read(read_into));
        break;
      case ReactorStep::kWrite:
        ReactorAccess::OnWriteDone(reactor, Write(*write_from));
        break;
      case ReactorStep::kWriteAndFinish:
        if (status.ok()) {
          Finish(status, write_from);  // the message and the trailers in one write
        } else {
          Write(*write_from);
          Finish(status, nullptr);
        }
        break;
      case ReactorStep::kFinish:
        Finish(status, status.ok() ? response : nullptr);
        break;
      case ReactorStep::kDone:
        if (deadline_task.has_value()) c.core_.deadline_timer().Cancel(*deadline_task);
        reactor->OnDone();
        state.reset();  // the request and response lived until OnDone
        break;
      case ReactorStep::kNone:
        break;
    }
  }
}

void ServerStream::StartSendInitialMetadata() {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (reactor_ == nullptr || reactor_->done) return;
    reactor_->headers_requested = true;
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

void ServerStream::StartRead(google::protobuf::MessageLite* message) {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (reactor_ == nullptr || reactor_->done) return;
    reactor_->read_into = message;
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

void ServerStream::StartWrite(const google::protobuf::MessageLite* message) {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (reactor_ == nullptr || reactor_->done || reactor_->finish_requested) return;
    reactor_->write_from = message;
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

void ServerStream::StartWriteAndFinish(const google::protobuf::MessageLite* message,
                                       absl::Status status) {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (reactor_ == nullptr || reactor_->done || reactor_->finish_requested) return;
    reactor_->write_from = message;
    reactor_->write_then_finish = true;
    reactor_->finish_requested = true;
    reactor_->finish_status = std::move(status);
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

void ServerStream::Finish(absl::Status status) {
  bool claimed;
  {
    internal::MutexLock lock(&connection_->mu_);
    if (reactor_ == nullptr || reactor_->done || reactor_->finish_requested) return;
    reactor_->finish_requested = true;
    reactor_->finish_status = std::move(status);
    claimed = ClaimReactionsLocked();
  }
  if (claimed) ScheduleReactions();
}

}  // namespace ipcrpc::internal

// --- The public reactor pieces (runtime/server_callback.h). ---

namespace ipcrpc {
namespace {
thread_local internal::ServerReactorCall* binding_call = nullptr;

class DefaultUnaryReactor final : public ServerUnaryReactor {
 public:
  void OnDone() override { delete this; }
};
}  // namespace

namespace internal {
ServerReactor::ServerReactor() : call_(binding_call) {}

ScopedReactorBinding::ScopedReactorBinding(ServerReactorCall* call) : previous_(binding_call) {
  binding_call = call;
}
ScopedReactorBinding::~ScopedReactorBinding() { binding_call = previous_; }
ServerReactorCall* ScopedReactorBinding::Current() { return binding_call; }

void ReactorAccess::SetReactorCallIfUnset(CallbackServerContext& context,
                                          ServerReactorCall* call) {
  if (context.reactor_call_ == nullptr) context.reactor_call_ = call;
}
}  // namespace internal

ServerUnaryReactor* CallbackServerContext::DefaultReactor() {
  // Bound to this context's call (through its interceptors, if any)
  // whichever thread asks.
  internal::ScopedReactorBinding binding(reactor_call_);
  return new DefaultUnaryReactor();
}

}  // namespace ipcrpc
