#include "runtime/internal/server_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "runtime/internal/server_connection.h"

namespace ipcrpc::internal {


ServerCore::ServerCore(const ServerOptions& options, std::vector<Service*> services,
                       const Service::RegisteredMethod* generic_method)
    : options_(options), services_(std::move(services)), generic_method_(generic_method) {}

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
  pool_ = std::make_unique<ThreadPool>(options_.num_threads, options_.max_queued_calls);
  watchdog_ = std::make_unique<ReadingRole::Watchdog>(
      options_.num_threads, [this](absl::Time released_before) { HandOffOrphanedRoles(released_before); });
  watchdog_->Start();
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

void ServerCore::AddListener(std::unique_ptr<Listener> listener) {
  Listener* l = listener.get();
  listeners_.push_back(std::move(listener));
  accept_threads_.emplace_back([this, l] { AcceptLoop(l); });
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
    if (!AddTransport(std::move(*t)).ok()) return;
  }
}

absl::Status ServerCore::AddTransport(std::unique_ptr<Transport> transport) {
  internal::MutexLock lock(&mu_);
  if (shutting_down_) return absl::FailedPreconditionError("server is shutting down");
  ReapFinishedConnectionsLocked();
  auto connection = std::make_shared<ServerConnection>(*this, std::move(transport));
  connections_.push_back(connection);
  ++live_connections_;
  connection->Start();
  return absl::OkStatus();
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

void ServerCore::ConnectionEnded() {
  internal::MutexLock lock(&mu_);
  --live_connections_;
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
  }
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
  for (auto& c : connections) c->Join();
  if (watchdog_ != nullptr) watchdog_->Stop();
  pool_.reset();
  internal::MutexLock lock(&mu_);
  connections_.clear();
  shut_down_ = true;
}

}  // namespace ipcrpc::internal
