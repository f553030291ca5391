#include "runtime/internal/server_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/thread.h"
#include "runtime/internal/server_connection.h"

namespace ipcrpc::internal {


ServerCore::ServerCore(const ServerOptions& options, std::vector<Service*> services,
                       const Service::RegisteredMethod* generic_method)
    : options_(options),
      streaming_handlers_per_connection_(
          options.max_streaming_handlers_per_connection != 0
              ? options.max_streaming_handlers_per_connection
              : static_cast<uint32_t>(std::max(1, options.num_threads / 2))),
      services_(std::move(services)),
      generic_method_(generic_method) {}

ServerCore::~ServerCore() { Shutdown(absl::Now()); }

absl::Status ServerCore::Init() {
  for (Service* service : services_) {
    if (!service_names_.insert(std::string(service->name())).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("service ", service->name(), " is registered twice"));
    }
    for (const Service::RegisteredMethod& m : service->methods()) {
      methods_[std::string(m.descriptor.name)] = &m;
    }
  }
  if (options_.num_threads < 1) {
    return absl::InvalidArgumentError("ServerOptions::num_threads must be at least 1");
  }
  pool_ = std::make_unique<ThreadPool>(options_.max_queued_calls);
  absl::Status started = pool_->Start(options_.num_threads);
  if (!started.ok()) return started;
  watchdog_ = std::make_unique<ReadingRole::Watchdog>(
      options_.num_threads, [this](absl::Time released_before) { HandOffOrphanedRoles(released_before); });
  started = watchdog_->Start();
  if (!started.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the server's watchdog: ", started.message()));
  }
  loop_ = std::make_unique<EventLoop>();
  started = loop_->Start();
  if (!started.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the server's event loop: ", started.message()));
  }
  absl::StatusOr<std::thread> reaper = StartThread([this] { ReapLoop(); });
  if (!reaper.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the server's reaper: ", reaper.status().message()));
  }
  reaper_ = std::move(*reaper);
  return absl::OkStatus();
}

absl::StatusOr<const Service::RegisteredMethod*> ServerCore::FindMethod(
    absl::string_view name) const {
  auto it = methods_.find(name);
  if (it != methods_.end()) return it->second;
  if (const Service::RegisteredMethod* generic = FindGenericMethod()) return generic;
  // "/pkg.Service/Method": say whether the service or only the method is unknown.
  size_t slash = name.rfind('/');
  if (name.size() < 3 || name[0] != '/' || slash == 0 || slash == absl::string_view::npos) {
    return absl::UnimplementedError(
        absl::StrCat("malformed method name \"", name, "\" (expected /package.Service/Method)"));
  }
  absl::string_view service = name.substr(1, slash - 1);
  if (!service_names_.contains(service)) {
    return absl::UnimplementedError(
        absl::StrCat("unknown service ", service, " (method ", name, ")"));
  }
  return absl::UnimplementedError(
      absl::StrCat("unknown method ", name.substr(slash + 1), " for service ", service));
}

absl::Status ServerCore::AddListener(std::unique_ptr<Listener> listener) {
  Listener* l = listener.get();
  absl::StatusOr<std::thread> t = StartThread([this, l] { AcceptLoop(l); });
  if (!t.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot start the accept thread for ", l->address(), ": ", t.status().message()));
  }
  listeners_.push_back(std::move(listener));
  accept_threads_.push_back(std::move(*t));
  return absl::OkStatus();
}

std::vector<std::string> ServerCore::addresses() const {
  std::vector<std::string> out;
  for (const auto& l : listeners_) out.push_back(l->address());
  return out;
}

void ServerCore::AcceptLoop(Listener* listener) {
  for (;;) {
    absl::StatusOr<std::unique_ptr<Transport>> t = listener->Accept();
    if (absl::IsCancelled(t.status())) return;
    if (!t.ok()) {
      // E.g. EMFILE: back off instead of spinning; the listener stays usable.
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    absl::Status added = AddTransport(std::move(*t));
    if (absl::IsFailedPrecondition(added)) return;  // shutting down
    // RESOURCE_EXHAUSTED (no thread for it): that client was refused; go on.
  }
}

absl::Status ServerCore::AddTransport(std::unique_ptr<Transport> transport) {
  std::shared_ptr<ServerConnection> connection;
  absl::Status started;
  {
    internal::MutexLock lock(&mu_);
    if (shutting_down_) return absl::FailedPreconditionError("server is shutting down");
    ReapFinishedConnectionsLocked();
    const uid_t uid = transport->peer().uid;
    connection = std::make_shared<ServerConnection>(*this, std::move(transport));
    started = AdmitLocked(uid);
    if (!started.ok()) {
      Count(Counter::kConnectionsRefusedLimit);
    } else if (!(started = connection->Start()).ok()) {
      Count(Counter::kConnectionsRefusedNoThread);
    }
    if (started.ok()) {
      Count(Counter::kConnectionsAccepted);
      connections_.push_back(connection);
      ++live_connections_;
      ++live_connections_per_uid_[uid];
      if (connections_.size() == 1) reap_cv_.Signal();  // idle checks start
      return started;
    }
  }
  // Written outside mu_: the refusal may wait for a slow client.
  connection->Refuse(started);
  return started;
}

absl::Status ServerCore::AdmitLocked(uid_t uid) {
  if (live_connections_ >= options_.max_connections) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "server has too many connections (max_connections ", options_.max_connections, ")"));
  }
  auto it = live_connections_per_uid_.find(uid);
  if (it != live_connections_per_uid_.end() && it->second >= options_.max_connections_per_uid) {
    return absl::ResourceExhaustedError(
        absl::StrCat("server has too many connections from uid ", uid,
                     " (max_connections_per_uid ", options_.max_connections_per_uid, ")"));
  }
  return absl::OkStatus();
}

absl::Duration ServerCore::IdleCheckInterval() const {
  absl::Duration shortest = absl::InfiniteDuration();
  if (options_.idle_timeout > absl::ZeroDuration()) shortest = options_.idle_timeout;
  if (options_.keepalive_time > absl::ZeroDuration()) {
    shortest = std::min({shortest, options_.keepalive_time, options_.keepalive_timeout});
  }
  if (shortest == absl::InfiniteDuration()) return absl::ZeroDuration();
  return std::clamp(shortest / 4, absl::Milliseconds(5), absl::Seconds(1));
}

void ServerCore::ReapLoop() {
  const absl::Duration idle_check = IdleCheckInterval();
  absl::Time next_idle_check = absl::Now() + idle_check;
  internal::MutexLock lock(&mu_);
  while (!shutting_down_) {
    if (connections_.size() > live_connections_) ReapFinishedConnectionsLocked();
    const bool checking = idle_check > absl::ZeroDuration() && !connections_.empty();
    absl::Time now = absl::Now();
    if (checking && now >= next_idle_check) {
      std::vector<std::shared_ptr<ServerConnection>> connections = connections_;
      mu_.Unlock();
      for (auto& c : connections) c->CheckIdle(now);
      connections.clear();
      mu_.Lock();
      next_idle_check = now + idle_check;
      continue;
    }
    // An ended connection finishes once its threads and calls are done:
    // look again soon while any is left.
    absl::Duration wait = absl::InfiniteDuration();
    if (connections_.size() > live_connections_) wait = absl::Milliseconds(10);
    if (checking) wait = std::min(wait, next_idle_check - now);
    if (wait == absl::InfiniteDuration()) {
      reap_cv_.Wait(&mu_);
      next_idle_check = absl::Now() + idle_check;  // woken by a new connection, or an end
    } else {
      reap_cv_.WaitWithTimeout(&mu_, wait);
    }
  }
}

void ServerCore::ReapFinishedConnectionsLocked() {
  auto finished = [](const std::shared_ptr<ServerConnection>& c) { return c->finished(); };
  for (auto& c : connections_) {
    if (finished(c)) c->Join();
  }
  connections_.erase(std::remove_if(connections_.begin(), connections_.end(), finished),
                     connections_.end());
}

void ServerCore::HandOffOrphanedRoles(absl::Time released_before) {
  std::vector<std::shared_ptr<ServerConnection>> connections;
  {
    internal::MutexLock lock(&mu_);
    connections = connections_;
  }
  for (auto& c : connections) c->HandOffIfOrphaned(released_before);
}

void ServerCore::ConnectionEnded(uid_t peer_uid) {
  internal::MutexLock lock(&mu_);
  --live_connections_;
  auto it = live_connections_per_uid_.find(peer_uid);
  if (it != live_connections_per_uid_.end() && --it->second == 0) {
    live_connections_per_uid_.erase(it);
  }
  reap_cv_.Signal();
}

ServerStats ServerCore::GetStats() const {
  auto get = [this](Counter c) {
    return counters_[static_cast<int>(c)].load(std::memory_order_relaxed);
  };
  ServerStats stats;
  stats.connections_accepted = get(Counter::kConnectionsAccepted);
  stats.connections_refused_limit = get(Counter::kConnectionsRefusedLimit);
  stats.connections_refused_no_thread = get(Counter::kConnectionsRefusedNoThread);
  stats.connections_closed_idle = get(Counter::kConnectionsClosedIdle);
  stats.connections_closed_keepalive = get(Counter::kConnectionsClosedKeepalive);
  stats.calls_resource_exhausted = get(Counter::kCallsResourceExhausted);
  stats.undeclared_fds_closed = get(Counter::kUndeclaredFdsClosed);
  for (const auto& l : listeners_) stats.peers_refused += l->refused_peers();
  {
    internal::MutexLock lock(&mu_);
    stats.live_connections = live_connections_;
  }
  stats.active_calls = static_cast<uint64_t>(std::max(0, active_calls_.load()));
  return stats;
}

bool ServerCore::IdleWithoutListenersLocked() const {
  return listeners_.empty() && live_connections_ == 0 && active_calls_ == 0;
}

void ServerCore::Wait() {
  internal::MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shut_down_ || IdleWithoutListenersLocked();
  });
}

void ServerCore::Shutdown(absl::Time deadline) {
  {
    internal::MutexLock lock(&mu_);
    if (shutting_down_) {
      mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shut_down_; });
      return;
    }
    shutting_down_ = true;
    reap_cv_.Signal();
  }
  if (reaper_.joinable()) reaper_.join();
  for (auto& l : listeners_) l->Close();
  for (auto& t : accept_threads_) t.join();
  accept_threads_.clear();
  std::vector<std::shared_ptr<ServerConnection>> connections;
  {
    internal::MutexLock lock(&mu_);
    connections = connections_;
  }
  for (auto& c : connections) c->GoAway("server is shutting down", deadline);
  auto no_calls = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_calls_ == 0; };
  {
    internal::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(no_calls, deadline);
  }
  for (auto& c : connections) c->CancelAll();
  // Closed before waiting for the cancelled handlers: one blocked writing to
  // a client that stopped reading returns only once its transport is shut
  // down. (Cancelled calls send nothing more anyway.)
  for (auto& c : connections) c->Close();
  {
    internal::MutexLock lock(&mu_);
    mu_.Await(no_calls);
  }
  // A connection waiting in the event loop ends in a turn of the loop (its
  // fd reports the close): the loop stops after every connection is joined.
  for (auto& c : connections) c->Join();
  if (loop_ != nullptr) loop_->Stop();
  if (watchdog_ != nullptr) watchdog_->Stop();
  deadline_timer_.Stop();
  pool_.reset();
  internal::MutexLock lock(&mu_);
  connections_.clear();
  shut_down_ = true;
}

}  // namespace ipcrpc::internal
