#include "runtime/server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "connect/address.h"
#include "runtime/config.h"
#include "runtime/generic_service.h"
#include "runtime/health.h"
#include "runtime/internal/interception.h"
#include "runtime/internal/server_core.h"
#include "runtime/reflection.h"

namespace ipcrpc {

Server::Server(std::unique_ptr<HealthService> health,
               std::unique_ptr<ProtoServerReflection> reflection,
               std::unique_ptr<internal::InterceptedServices> intercepted,
               std::unique_ptr<internal::ServerCore> core)
    : health_(std::move(health)),
      reflection_(std::move(reflection)),
      intercepted_(std::move(intercepted)),
      core_(std::move(core)) {}

Server::~Server() { Shutdown(absl::Now()); }

void Server::Wait() { core_->Wait(); }

void Server::Shutdown(absl::Time deadline) {
  if (health_ != nullptr) {  // health clients learn first, and Watch calls do not hold the drain
    health_->Shutdown();
    health_->EndWatches();
  }
  core_->Shutdown(deadline);
}

absl::Status Server::AddTransport(std::unique_ptr<Transport> transport) {
  return core_->AddTransport(std::move(transport));
}

std::vector<std::string> Server::addresses() const { return core_->addresses(); }

ServerStats Server::GetStats() const { return core_->GetStats(); }

ServerBuilder& ServerBuilder::AddListeningAddress(std::string address) {
  addresses_.push_back(std::move(address));
  return *this;
}

ServerBuilder& ServerBuilder::AddTransport(std::unique_ptr<Transport> transport) {
  transports_.push_back(std::move(transport));
  return *this;
}

ServerBuilder& ServerBuilder::AddListener(std::unique_ptr<Listener> listener) {
  listeners_.push_back(std::move(listener));
  return *this;
}

ServerBuilder& ServerBuilder::RegisterService(Service* service) {
  services_.push_back(service);
  return *this;
}

ServerBuilder& ServerBuilder::RegisterGenericService(GenericService* service) {
  generic_services_.push_back(service);
  return *this;
}

ServerBuilder& ServerBuilder::EnableHealthService() {
  health_enabled_ = true;
  return *this;
}

ServerBuilder& ServerBuilder::EnableReflection() { return EnableReflection(ReflectionOptions()); }

ServerBuilder& ServerBuilder::EnableReflection(const ReflectionOptions& options) {
  reflection_ = std::make_shared<const ReflectionOptions>(options);
  return *this;
}

ServerBuilder& ServerBuilder::SetConfig(const config::ServerConfig& config) {
  config_ = config;
  return *this;
}

ServerBuilder& ServerBuilder::SetOptions(const ServerOptions& options) {
  options_ = options;
  return *this;
}

ServerBuilder& ServerBuilder::SetDefaultCompressionAlgorithm(CompressionAlgorithm algorithm) {
  options_.default_compression_algorithm = algorithm;
  return *this;
}

absl::StatusOr<std::unique_ptr<Server>> ServerBuilder::BuildAndStart() {
  if (addresses_.empty() && transports_.empty() && listeners_.empty()) {
    return absl::FailedPreconditionError(
        "nothing to serve: add a listening address or a transport to the ServerBuilder");
  }
  for (Service* s : services_) {
    if (s == nullptr) return absl::InvalidArgumentError("RegisterService(nullptr)");
  }
  if (generic_services_.size() > 1) {
    return absl::AlreadyExistsError("more than one generic service registered");
  }
  const Service::RegisteredMethod* generic_method = nullptr;
  if (!generic_services_.empty()) {
    if (generic_services_[0] == nullptr) {
      return absl::InvalidArgumentError("RegisterGenericService(nullptr)");
    }
    generic_method = &generic_services_[0]->method_;
  }
  if (!config_.has_value()) {
    IPCRPC_ASSIGN_OR_RETURN(config::Config file, LoadConfigFromEnvironment());
    config_ = file.server();
  }
  if (config_->max_message_bytes() != 0) options_.max_message_size = config_->max_message_bytes();
  if (config_->socket_mode() != 0) options_.socket_mode = config_->socket_mode();
  AccessPolicy& policy = options_.access_policy;
  policy.allow_any_peer = policy.allow_any_peer || config_->allow_any_peer();
  policy.allowed_uids.insert(policy.allowed_uids.end(), config_->allowed_uids().begin(),
                             config_->allowed_uids().end());
  policy.allowed_gids.insert(policy.allowed_gids.end(), config_->allowed_gids().begin(),
                             config_->allowed_gids().end());
  policy.allowed_executables.insert(policy.allowed_executables.end(),
                                    config_->allowed_executables().begin(),
                                    config_->allowed_executables().end());
  if (options_.socket_mode > 07777) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket_mode ", options_.socket_mode, " is not a file mode (0 to 07777)"));
  }
  if (config_->max_metadata_bytes() != 0) options_.max_metadata_bytes = config_->max_metadata_bytes();
  if (config_->max_metadata_entries() != 0) {
    options_.max_metadata_entries = config_->max_metadata_entries();
  }
  if (config_->max_connections() != 0) options_.max_connections = config_->max_connections();
  if (config_->max_connections_per_uid() != 0) {
    options_.max_connections_per_uid = config_->max_connections_per_uid();
  }
  if (config_->max_concurrent_calls() != 0) {
    options_.max_concurrent_calls = config_->max_concurrent_calls();
  }
  if (config_->max_streaming_handlers_per_connection() != 0) {
    options_.max_streaming_handlers_per_connection =
        config_->max_streaming_handlers_per_connection();
  }
  if (config_->has_handshake_timeout_ms()) {
    options_.handshake_timeout = absl::Milliseconds(config_->handshake_timeout_ms());
  }
  if (config_->has_idle_timeout_ms()) {
    options_.idle_timeout = absl::Milliseconds(config_->idle_timeout_ms());
  }
  if (config_->has_keepalive_time_ms()) {
    options_.keepalive_time = absl::Milliseconds(config_->keepalive_time_ms());
  }
  if (config_->has_keepalive_timeout_ms()) {
    options_.keepalive_timeout = absl::Milliseconds(config_->keepalive_timeout_ms());
  }
  if (!config_->compression().empty()) {
    absl::StatusOr<CompressionAlgorithm> algorithm =
        ParseCompressionAlgorithm(config_->compression());
    if (!algorithm.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("server config: ", algorithm.status().message()));
    }
    options_.default_compression_algorithm = *algorithm;
  }
  if (config_->has_accept_compression()) options_.accept_compression = config_->accept_compression();
  if (config_->has_max_fds_per_message()) {
    options_.max_fds_per_message = config_->max_fds_per_message();
  }
  std::vector<std::string> allowed(config_->allowed_transports().begin(),
                                   config_->allowed_transports().end());
  std::unique_ptr<HealthService> health;
  std::vector<Service*> services = services_;
  if (health_enabled_) {
    health = std::make_unique<HealthService>();
    health->SetServingStatus("", true);
    for (Service* s : services_) health->SetServingStatus(s->name(), true);
    services.push_back(health.get());
  }
  std::unique_ptr<ProtoServerReflection> reflection;
  if (reflection_ != nullptr) {
    std::vector<std::string> names;
    for (Service* s : services) names.emplace_back(s->name());
    names.push_back("grpc.reflection.v1.ServerReflection");
    names.push_back("grpc.reflection.v1alpha.ServerReflection");
    reflection = std::make_unique<ProtoServerReflection>(std::move(names), *reflection_);
    services.push_back(reflection->v1_service());
    services.push_back(reflection->v1alpha_service());
  }
  std::unique_ptr<internal::InterceptedServices> intercepted;
  if (!interceptor_creators_.empty()) {
    for (const auto& c : interceptor_creators_) {
      if (c == nullptr) return absl::InvalidArgumentError("a null server interceptor creator");
    }
    intercepted = std::make_unique<internal::InterceptedServices>(
        std::move(interceptor_creators_), services, generic_method);
    interceptor_creators_.clear();
    services = intercepted->services();
    generic_method = intercepted->generic_method();
  }
  auto core = std::make_unique<internal::ServerCore>(options_, std::move(services), generic_method);
  IPCRPC_RETURN_IF_ERROR(core->Init());
  std::vector<std::unique_ptr<Listener>> listeners = std::move(listeners_);
  listeners_.clear();
  for (const std::string& address : addresses_) {
    absl::StatusOr<std::unique_ptr<Listener>> l =
        MakeListener(address, allowed, config_->tuning(), options_.socket_mode,
                     [policy = options_.access_policy](const PeerCredentials& peer) {
                       return policy.Check(peer);
                     });
    if (!l.ok()) return l.status();  // listeners made so far close on return
    listeners.push_back(std::move(*l));
  }
  for (auto& l : listeners) IPCRPC_RETURN_IF_ERROR(core->AddListener(std::move(l)));
  for (auto& t : transports_) IPCRPC_RETURN_IF_ERROR(core->AddTransport(std::move(t)));
  transports_.clear();
  return std::unique_ptr<Server>(
      new Server(std::move(health), std::move(reflection), std::move(intercepted), std::move(core)));
}

}  // namespace ipcrpc
