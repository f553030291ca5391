// ipcrpc: gRPC's health checking service, grpc.health.v1.Health.
//
// HealthService answers Check and Watch exactly as gRPC's health service
// does, so orchestrators' probes and gRPC health clients (through the gRPC
// bridge, or any ipcrpc stub of proto/grpc/health/v1/health.proto) work with
// ipcrpc servers:
//   * Check(service) returns the service's status (SERVING / NOT_SERVING),
//     or fails with NOT_FOUND when the server does not know the service;
//   * Watch(service) sends the current status at once (SERVICE_UNKNOWN for a
//     service not known), then every change, until the client cancels or
//     the server shuts down (the stream then ends with UNAVAILABLE).
// The service name "" stands for the server as a whole.
//
// Enabling it is one line, ServerBuilder::EnableHealthService(): the server
// then owns a HealthService with "" and every registered service SERVING,
// Server::health_service() reaches it, and Server::Shutdown() makes every
// status NOT_SERVING and ends open Watch calls before it drains the other
// calls. A HealthService may also be made and registered like any service
// (RegisterService); its owner then calls Shutdown() and EndWatches().
//
// Thread-safety: every method is thread-safe. Lifetime: must outlive the
// server it is registered with (the builder's own one does).
//
// Example:
//   builder.RegisterService(&kv).EnableHealthService();
//   auto server = builder.BuildAndStart();
//   ...
//   (*server)->health_service()->SetServingStatus("demo.KeyValue", false);

#ifndef IPCRPC_RUNTIME_HEALTH_H_
#define IPCRPC_RUNTIME_HEALTH_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "proto/grpc/health/v1/health.ipcrpc.pb.h"

namespace ipcrpc {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // Knows no service, not even "" (Check fails NOT_FOUND until set).
  HealthService() = default;

  // Sets one service's status ("" is the whole server); watchers of it are
  // told. Ignored after Shutdown().
  void SetServingStatus(absl::string_view service, bool serving);
  // Sets every known service's status. Ignored after Shutdown().
  void SetServingStatus(bool serving);
  // What Check would answer: the status, or SERVICE_UNKNOWN.
  ServingStatus GetServingStatus(absl::string_view service) const;

  // Every known service becomes NOT_SERVING for good (later
  // SetServingStatus calls are ignored), as in gRPC; watchers are told and
  // stay open.
  void Shutdown();
  // Ends every Watch call, now and later, with UNAVAILABLE (the server is
  // going away). Server::Shutdown() calls it for the builder's service.
  void EndWatches();

  absl::Status Check(ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  absl::Status Watch(ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  ServingStatus StatusLocked(absl::string_view service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // How often a waiting Watch looks whether its call was cancelled (a
  // cancellation does not wake it).
  static constexpr absl::Duration kCancelPoll = absl::Milliseconds(50);

  mutable internal::Mutex mu_;
  internal::CondVar changed_;  // a status changed, or Shutdown / EndWatches
  absl::flat_hash_map<std::string, ServingStatus> statuses_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool watches_ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_HEALTH_H_
