#include "runtime/reflection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"

namespace ipcrpc {

namespace v1 = grpc::reflection::v1;
namespace v1alpha = grpc::reflection::v1alpha;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

ProtoServerReflection::ProtoServerReflection(std::vector<std::string> services,
                                             ReflectionOptions options)
    : services_([&] {
        for (std::string& extra : options.extra_services) {
          if (std::find(services.begin(), services.end(), extra) == services.end()) {
            services.push_back(std::move(extra));
          }
        }
        return std::move(services);
      }()) {
  pools_.push_back(DescriptorPool::generated_pool());
  for (const DescriptorPool* pool : options.descriptor_pools) {
    if (pool != nullptr) pools_.push_back(pool);
  }
}

absl::StatusOr<const FileDescriptor*> ProtoServerReflection::FindFileByName(
    const std::string& name) const {
  for (const DescriptorPool* pool : pools_) {
    if (const FileDescriptor* file = pool->FindFileByName(name)) return file;
  }
  return absl::NotFoundError(absl::StrCat("file \"", name, "\" not found"));
}

absl::StatusOr<const FileDescriptor*> ProtoServerReflection::FindFileContainingSymbol(
    const std::string& symbol) const {
  for (const DescriptorPool* pool : pools_) {
    if (const FileDescriptor* file = pool->FindFileContainingSymbol(symbol)) return file;
  }
  return absl::NotFoundError(absl::StrCat("symbol \"", symbol, "\" not found"));
}

absl::StatusOr<const FileDescriptor*> ProtoServerReflection::FindFileContainingExtension(
    const std::string& type, int number) const {
  bool type_known = false;
  for (const DescriptorPool* pool : pools_) {
    const Descriptor* message = pool->FindMessageTypeByName(type);
    if (message == nullptr) continue;
    type_known = true;
    if (const FieldDescriptor* extension = pool->FindExtensionByNumber(message, number)) {
      return extension->file();
    }
  }
  if (!type_known) return absl::NotFoundError(absl::StrCat("type \"", type, "\" not found"));
  return absl::NotFoundError(absl::StrCat("extension ", number, " of \"", type, "\" not found"));
}

absl::StatusOr<std::vector<int>> ProtoServerReflection::FindExtensionNumbers(
    const std::string& type) const {
  bool type_known = false;
  std::vector<int> numbers;
  for (const DescriptorPool* pool : pools_) {
    const Descriptor* message = pool->FindMessageTypeByName(type);
    if (message == nullptr) continue;
    type_known = true;
    std::vector<const FieldDescriptor*> extensions;
    pool->FindAllExtensions(message, &extensions);
    for (const FieldDescriptor* extension : extensions) {
      if (std::find(numbers.begin(), numbers.end(), extension->number()) == numbers.end()) {
        numbers.push_back(extension->number());
      }
    }
  }
  if (!type_known) return absl::NotFoundError(absl::StrCat("type \"", type, "\" not found"));
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

void ProtoServerReflection::AddFiles(const FileDescriptor* file, StreamState* stream,
                                     v1::FileDescriptorResponse* out) {
  // The requested file first, then what it imports, depth first; each file
  // once per stream (clients keep what they were sent).
  if (!stream->sent_files.insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFiles(file->dependency(i), stream, out);
}

void ProtoServerReflection::Answer(const v1::ServerReflectionRequest& request, StreamState* stream,
                                   v1::ServerReflectionResponse* response) const {
  response->set_valid_host(request.host());
  *response->mutable_original_request() = request;
  absl::StatusOr<const FileDescriptor*> file = absl::UnknownError("");
  switch (request.message_request_case()) {
    case v1::ServerReflectionRequest::kListServices: {
      v1::ListServiceResponse* list = response->mutable_list_services_response();
      for (const std::string& name : services_) list->add_service()->set_name(name);
      return;
    }
    case v1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      absl::StatusOr<std::vector<int>> numbers =
          FindExtensionNumbers(request.all_extension_numbers_of_type());
      if (numbers.ok()) {
        v1::ExtensionNumberResponse* out = response->mutable_all_extension_numbers_response();
        out->set_base_type_name(request.all_extension_numbers_of_type());
        for (int n : *numbers) out->add_extension_number(n);
        return;
      }
      file = numbers.status();
      break;
    }
    case v1::ServerReflectionRequest::kFileByFilename:
      file = FindFileByName(request.file_by_filename());
      break;
    case v1::ServerReflectionRequest::kFileContainingSymbol:
      file = FindFileContainingSymbol(request.file_containing_symbol());
      break;
    case v1::ServerReflectionRequest::kFileContainingExtension:
      file = FindFileContainingExtension(request.file_containing_extension().containing_type(),
                                         request.file_containing_extension().extension_number());
      break;
    case v1::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      file = absl::UnimplementedError("the request names no known message_request");
      break;
  }
  if (file.ok()) {
    AddFiles(*file, stream, response->mutable_file_descriptor_response());
    return;
  }
  v1::ErrorResponse* error = response->mutable_error_response();
  error->set_error_code(static_cast<int>(file.status().code()));
  error->set_error_message(std::string(file.status().message()));
}

absl::Status ProtoServerReflection::V1Service::ServerReflectionInfo(
    ServerContext* context,
    ServerReaderWriter<v1::ServerReflectionResponse, v1::ServerReflectionRequest>* stream) {
  StreamState state;
  v1::ServerReflectionRequest request;
  while (stream->Read(&request)) {
    v1::ServerReflectionResponse response;
    owner_->Answer(request, &state, &response);
    if (!stream->Write(response)) return absl::CancelledError("the client went away");
  }
  return absl::OkStatus();
}

absl::Status ProtoServerReflection::V1AlphaService::ServerReflectionInfo(
    ServerContext* context,
    ServerReaderWriter<v1alpha::ServerReflectionResponse, v1alpha::ServerReflectionRequest>*
        stream) {
  // v1alpha's messages are v1's under another package name: same fields,
  // same numbers, so the bytes of one parse as the other.
  StreamState state;
  v1alpha::ServerReflectionRequest alpha_request;
  while (stream->Read(&alpha_request)) {
    v1::ServerReflectionRequest request;
    request.ParseFromString(alpha_request.SerializeAsString());
    v1::ServerReflectionResponse response;
    owner_->Answer(request, &state, &response);
    v1alpha::ServerReflectionResponse alpha_response;
    alpha_response.ParseFromString(response.SerializeAsString());
    if (!stream->Write(alpha_response)) return absl::CancelledError("the client went away");
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc
