// ls, describe and health (call.cc: call; bench.cc: bench).

#include "tools/cli/commands.h"

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/thread.h"
#include "proto/grpc/health/v1/health.ipcrpc.pb.h"
#include "runtime/client_context.h"
#include "tools/cli/interrupt.h"

namespace ipcrpc::cli {

namespace pb = google::protobuf;

int RunLs(const Options& options, DescriptorSource& source) {
  if (options.positional.size() == 2) {
    absl::StatusOr<std::vector<std::string>> services = source.ListServices();
    if (!services.ok()) return ReportError(services.status());
    for (const std::string& name : *services) std::printf("%s\n", name.c_str());
    return kExitOk;
  }
  absl::StatusOr<const pb::ServiceDescriptor*> service = source.FindService(options.positional[2]);
  if (!service.ok()) return ReportError(service.status());
  for (int i = 0; i < (*service)->method_count(); ++i) {
    const pb::MethodDescriptor* m = (*service)->method(i);
    std::printf("%s/%s\n", (*service)->full_name().c_str(), m->name().c_str());
  }
  return kExitOk;
}

int RunDescribe(const Options& options, DescriptorSource& source) {
  absl::StatusOr<std::string> text = source.Describe(options.positional[2]);
  if (!text.ok()) return ReportError(text.status());
  std::fputs(text->c_str(), stdout);
  return kExitOk;
}

namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

absl::Status ExplainHealthError(const absl::Status& status, const std::string& service) {
  if (status.code() == absl::StatusCode::kUnimplemented) {
    return absl::UnimplementedError(absl::StrCat(
        "the server does not serve grpc.health.v1.Health: ", status.message()));
  }
  if (status.code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("the server's health service does not know \"",
                                            service, "\": ", status.message()));
  }
  return status;
}

int ExitFor(HealthCheckResponse::ServingStatus status) {
  return status == HealthCheckResponse::SERVING ? kExitOk : kExitNotServing;
}

// health --watch: one line per status the server sends, until Ctrl-C,
// --timeout or the server ends the stream. The exit status is the last
// status's (0 SERVING, 3 otherwise) when the user ended the watch, or the
// call's error when something else did.
int WatchHealth(const Options& options, grpc::health::v1::Health::Stub& stub,
                const HealthCheckRequest& request) {
  ClientContext ctx;
  if (options.timeout) ctx.set_timeout(*options.timeout);
  for (const auto& [key, value] : options.metadata) ctx.AddMetadata(key, value);
  StopOnInterrupt interrupt;
  std::atomic<bool> over{false};
  // Ctrl-C cancels the call (a blocked Read cannot watch the flag itself).
  absl::StatusOr<std::thread> canceller = internal::StartThread([&] {
    while (!over.load(std::memory_order_relaxed)) {
      if (interrupt.stopped()) {
        ctx.TryCancel();
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  if (!canceller.ok()) return ReportError(canceller.status());
  auto reader = stub.Watch(&ctx, request);
  HealthCheckResponse response;
  int seen = 0;
  HealthCheckResponse::ServingStatus last = HealthCheckResponse::UNKNOWN;
  while (reader->Read(&response)) {
    ++seen;
    last = response.status();
    std::printf("%s\n", HealthCheckResponse::ServingStatus_Name(last).c_str());
    std::fflush(stdout);
  }
  absl::Status status = reader->Finish();
  over.store(true, std::memory_order_relaxed);
  canceller->join();
  const bool ended_by_user =
      interrupt.stopped() || (options.timeout && absl::IsDeadlineExceeded(status));
  if (seen > 0 && ended_by_user) return ExitFor(last);
  if (status.ok()) {
    status = absl::UnavailableError("the server ended the watch");
  }
  return ReportError(FromCall(ExplainHealthError(status, request.service())));
}

}  // namespace

int RunHealth(const Options& options, std::shared_ptr<Channel> channel) {
  auto stub = grpc::health::v1::Health::NewStub(std::move(channel));
  HealthCheckRequest request;
  if (options.positional.size() == 3) request.set_service(options.positional[2]);
  if (options.watch) return WatchHealth(options, *stub, request);
  ClientContext ctx;
  ctx.set_timeout(options.timeout.value_or(absl::Seconds(10)));
  for (const auto& [key, value] : options.metadata) ctx.AddMetadata(key, value);
  HealthCheckResponse response;
  absl::Status status = stub->Check(&ctx, request, &response);
  if (!status.ok()) return ReportError(FromCall(ExplainHealthError(status, request.service())));
  std::printf("%s\n", HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return ExitFor(response.status());
}

}  // namespace ipcrpc::cli
