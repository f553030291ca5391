#include "runtime/health.h"

#include "absl/strings/str_cat.h"

namespace ipcrpc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

void HealthService::SetServingStatus(absl::string_view service, bool serving) {
  internal::MutexLock lock(&mu_);
  if (shut_down_) return;
  statuses_[service] = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  changed_.SignalAll();
}

void HealthService::SetServingStatus(bool serving) {
  internal::MutexLock lock(&mu_);
  if (shut_down_) return;
  for (auto& [name, status] : statuses_) {
    status = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  }
  changed_.SignalAll();
}

HealthService::ServingStatus HealthService::GetServingStatus(absl::string_view service) const {
  internal::MutexLock lock(&mu_);
  return StatusLocked(service);
}

HealthService::ServingStatus HealthService::StatusLocked(absl::string_view service) const {
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN : it->second;
}

void HealthService::Shutdown() {
  internal::MutexLock lock(&mu_);
  for (auto& [name, status] : statuses_) status = HealthCheckResponse::NOT_SERVING;
  shut_down_ = true;
  changed_.SignalAll();
}

void HealthService::EndWatches() {
  internal::MutexLock lock(&mu_);
  watches_ended_ = true;
  changed_.SignalAll();
}

absl::Status HealthService::Check(ServerContext* context, const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  ServingStatus status = GetServingStatus(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return absl::NotFoundError(absl::StrCat("unknown service \"", request->service(), "\""));
  }
  response->set_status(status);
  return absl::OkStatus();
}

absl::Status HealthService::Watch(ServerContext* context, const HealthCheckRequest* request,
                                  ServerWriter<HealthCheckResponse>* writer) {
  bool sent_any = false;
  ServingStatus sent = HealthCheckResponse::UNKNOWN;
  internal::MutexLock lock(&mu_);
  while (true) {
    // A change made just before EndWatches (Shutdown's NOT_SERVING) still goes out.
    const ServingStatus now = StatusLocked(request->service());
    if (!sent_any || now != sent) {
      sent_any = true;
      sent = now;
      HealthCheckResponse response;
      response.set_status(now);
      mu_.Unlock();  // never write (which may wait for the client) under the lock
      const bool written = writer->Write(response);
      mu_.Lock();
      if (!written) return absl::CancelledError("the watcher went away");
      continue;  // the status may have changed while writing
    }
    if (watches_ended_) return absl::UnavailableError("the server is shutting down");
    if (context->IsCancelled()) return absl::CancelledError("watch cancelled");
    changed_.WaitWithTimeout(&mu_, kCancelPoll);
  }
}

}  // namespace ipcrpc
