// ls, describe and health (call.cc: call; bench.cc: bench).

#include "tools/cli/commands.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/grpc/health/v1/health.ipcrpc.pb.h"
#include "runtime/client_context.h"

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

int RunHealth(const Options& options, std::shared_ptr<Channel> channel) {
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  auto stub = grpc::health::v1::Health::NewStub(std::move(channel));
  ClientContext ctx;
  ctx.set_timeout(options.timeout.value_or(absl::Seconds(10)));
  for (const auto& [key, value] : options.metadata) ctx.AddMetadata(key, value);
  HealthCheckRequest request;
  if (options.positional.size() == 3) request.set_service(options.positional[2]);
  HealthCheckResponse response;
  absl::Status status = stub->Check(&ctx, request, &response);
  if (status.code() == absl::StatusCode::kUnimplemented) {
    status = absl::UnimplementedError(absl::StrCat(
        "the server does not serve grpc.health.v1.Health: ", status.message()));
  } else if (status.code() == absl::StatusCode::kNotFound) {
    status = absl::NotFoundError(absl::StrCat("the server's health service does not know \"",
                                              request.service(), "\": ", status.message()));
  }
  if (!status.ok()) return ReportError(FromCall(status));
  std::printf("%s\n", HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return response.status() == HealthCheckResponse::SERVING ? kExitOk : kExitNotServing;
}

}  // namespace ipcrpc::cli
