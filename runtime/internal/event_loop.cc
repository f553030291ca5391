#include "runtime/internal/event_loop.h"

#include <errno.h>
#include <sys/epoll.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/fd_util.h"

namespace ipcrpc::internal {
namespace {

constexpr uint64_t kStopId = 0;
constexpr uint64_t kPostId = 1;
// Each new readability, hang-up or error, for as long as the fd is watched.
constexpr uint32_t kWatchedEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;

}  // namespace

EventLoop::EventLoop(int spare_threads, absl::Duration idle_exit, ThreadStarter start_thread)
    : spare_threads_(std::max(1, spare_threads)),
      idle_exit_ms_(static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(idle_exit), 1, 3'600'000))),
      start_thread_(std::move(start_thread)) {}

EventLoop::~EventLoop() { Stop(); }

absl::Status EventLoop::Start() {
  epoll_ = ScopedFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return ErrnoStatus(errno, "event loop: epoll_create1");
  absl::StatusOr<ScopedFd> stop = MakeEventFd();
  if (!stop.ok()) return stop.status();
  stop_event_ = std::move(*stop);
  // Level-triggered and never disarmed: once signalled, every thread sees it.
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kStopId;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_event_.get(), &event) != 0) {
    return ErrnoStatus(errno, "event loop: epoll_ctl(ADD) of its stop event");
  }
  absl::StatusOr<ScopedFd> post = MakeEventFd();
  if (!post.ok()) return post.status();
  post_event_ = std::move(*post);
  event.events = EPOLLIN;  // level-triggered: readable while posts wait
  event.data.u64 = kPostId;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, post_event_.get(), &event) != 0) {
    return ErrnoStatus(errno, "event loop: epoll_ctl(ADD) of its post event");
  }
  internal::MutexLock lock(&mu_);
  for (int i = 0; i < spare_threads_; ++i) {
    if (!StartThreadLocked()) {
      return absl::ResourceExhaustedError("event loop: cannot start its threads");
    }
  }
  return absl::OkStatus();
}

bool EventLoop::StartThreadLocked() {
  if (stopping_) return false;
  // Counted as waiting before it runs, so that two busy threads do not both
  // start one for the same shortage.
  waiting_.fetch_add(1);
  absl::StatusOr<std::thread> t = start_thread_([this] { ThreadMain(); });
  if (!t.ok()) {
    waiting_.fetch_sub(1);
    return false;
  }
  threads_.push_back(std::move(*t));
  thread_count_.store(static_cast<int>(threads_.size()));
  return true;
}

void EventLoop::JoinEndedLocked() {
  for (std::thread& t : ended_) t.join();
  ended_.clear();
}

void EventLoop::ThreadMain() {
  for (;;) {
    // A thread beyond the spare ones waits only so long for a turn.
    const int timeout = thread_count_.load() > spare_threads_ ? idle_exit_ms_ : -1;
    epoll_event event{};
    int n = ::epoll_wait(epoll_.get(), &event, 1, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      // Idle that long: end, if enough others wait (an exact count: only
      // a thread leaving waiting lowers it, and always under this lock).
      internal::MutexLock lock(&mu_);
      if (stopping_ || waiting_.load() <= spare_threads_) continue;
      waiting_.fetch_sub(1);
      for (auto it = threads_.begin(); it != threads_.end(); ++it) {
        if (it->get_id() == std::this_thread::get_id()) {
          ended_.splice(ended_.end(), threads_, it);  // joined by the next start or Stop()
          break;
        }
      }
      thread_count_.store(static_cast<int>(threads_.size()));
      return;
    }
    if (n < 0) {
      // EBADF/EINVAL: the set is gone, which only Stop() does after the
      // threads are joined; nothing to serve either way.
      internal::MutexLock lock(&mu_);
      waiting_.fetch_sub(1);
      return;
    }
    if (event.data.u64 == kStopId) {
      internal::MutexLock lock(&mu_);
      waiting_.fetch_sub(1);
      return;
    }
    std::shared_ptr<Watcher> watcher;
    {
      // This thread stops waiting: keep one waiting for the other watchers.
      internal::MutexLock lock(&mu_);
      if (waiting_.fetch_sub(1) == 1) {
        JoinEndedLocked();
        StartThreadLocked();  // if it fails, the others wait for this turn
      }
      uint64_t id = event.data.u64;
      if (id == kPostId) {
        // Signalled under mu_ with every Post; drained under it once the
        // queue is empty, so no post is left unannounced. (Several threads
        // may wake for one post: those that find none go back.)
        id = 0;
        if (!posted_.empty()) {
          id = posted_.front();
          posted_.pop_front();
        }
        if (posted_.empty()) DrainEventFd(post_event_.get());
      }
      auto it = watchers_.find(id);
      if (it != watchers_.end()) watcher = it->second;  // else: forgotten meanwhile
    }
    if (watcher != nullptr) watcher->OnReadable();
    watcher.reset();  // the last reference may be this one: released unlocked
    waiting_.fetch_add(1);  // back to waiting
  }
}

absl::StatusOr<EventLoop::Registration> EventLoop::Watch(int fd,
                                                           std::shared_ptr<Watcher> watcher) {
  Registration registration;
  registration.fd = fd;
  {
    internal::MutexLock lock(&mu_);
    if (stopping_ || !epoll_.valid()) {
      return absl::FailedPreconditionError("event loop: stopped");
    }
    registration.id = next_id_++;
    watchers_[registration.id] = std::move(watcher);
  }
  epoll_event event{};
  event.events = kWatchedEvents;  // reported at once if readable already
  event.data.u64 = registration.id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    absl::Status status = ErrnoStatus(errno, "event loop: epoll_ctl(ADD)");
    internal::MutexLock lock(&mu_);
    watchers_.erase(registration.id);
    return status;
  }
  return registration;
}

void EventLoop::Post(const Registration& registration) {
  internal::MutexLock lock(&mu_);
  if (stopping_ || !post_event_.valid()) return;
  posted_.push_back(registration.id);
  SignalEventFd(post_event_.get());
}

void EventLoop::Forget(const Registration& registration) {
  std::shared_ptr<Watcher> dropped;  // released after the lock
  internal::MutexLock lock(&mu_);
  auto it = watchers_.find(registration.id);
  if (it == watchers_.end()) return;
  // Before the fd can be closed (the watcher owns it): the set never
  // reports an fd number that has been reused.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, registration.fd, nullptr);
  dropped = std::move(it->second);
  watchers_.erase(it);
}

void EventLoop::Stop() {
  std::list<std::thread> threads;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Watcher>> watchers;
  {
    internal::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (stop_event_.valid()) SignalEventFd(stop_event_.get());
    threads.swap(threads_);
    threads.splice(threads.end(), ended_);
    thread_count_.store(0);
  }
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // stopped from one of its own watchers
    } else {
      t.join();
    }
  }
  {
    internal::MutexLock lock(&mu_);
    watchers.swap(watchers_);
  }
  // Dropped outside the lock: a watcher's destructor may call Forget().
  watchers.clear();
}

int EventLoop::threads() const {
  internal::MutexLock lock(&mu_);
  return static_cast<int>(threads_.size());
}

size_t EventLoop::watched() const {
  internal::MutexLock lock(&mu_);
  return watchers_.size();
}

}  // namespace ipcrpc::internal
