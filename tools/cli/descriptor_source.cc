#include "tools/cli/descriptor_source.h"

#include <sys/stat.h>

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "google/protobuf/compiler/importer.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "proto/grpc/reflection/v1/reflection.pb.h"
#include "runtime/client_context.h"
#include "runtime/generic_stub.h"
#include "tools/cli/options.h"

namespace ipcrpc::cli {
namespace {

namespace pb = google::protobuf;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

constexpr const char* kReflectionMethods[] = {
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

// A DescriptorDatabase that asks the server's reflection service. Every file
// a response carries is kept; the pool on top asks for each file once.
class ReflectionDatabase final : public pb::DescriptorDatabase {
 public:
  ReflectionDatabase(std::shared_ptr<Channel> channel, Metadata metadata, absl::Duration timeout)
      : stub_(std::move(channel)), metadata_(std::move(metadata)), timeout_(timeout) {}
  ~ReflectionDatabase() override { Close().IgnoreError(); }

  bool FindFileByName(const std::string& filename, pb::FileDescriptorProto* output) override {
    if (Lookup(filename, output)) return true;
    ServerReflectionRequest request;
    request.set_file_by_filename(filename);
    return AskForFile(request, filename, output);
  }
  bool FindFileContainingSymbol(const std::string& symbol,
                                pb::FileDescriptorProto* output) override {
    ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    return AskForFile(request, "", output);
  }
  bool FindFileContainingExtension(const std::string& containing_type, int field_number,
                                   pb::FileDescriptorProto* output) override {
    ServerReflectionRequest request;
    request.mutable_file_containing_extension()->set_containing_type(containing_type);
    request.mutable_file_containing_extension()->set_extension_number(field_number);
    return AskForFile(request, "", output);
  }

  absl::StatusOr<std::vector<std::string>> ListServices() {
    ServerReflectionRequest request;
    request.set_list_services("");
    absl::StatusOr<ServerReflectionResponse> response = Ask(request);
    if (!response.ok()) return response.status();
    if (response->has_error_response()) return ErrorOf(*response);
    std::vector<std::string> names;
    for (const auto& service : response->list_services_response().service()) {
      names.push_back(service.name());
    }
    return names;
  }

  // The last failure of the reflection call itself (not NOT_FOUND answers).
  const absl::Status& call_error() const { return call_error_; }

  void EndStream() { Close().IgnoreError(); }

 private:
  static absl::Status ErrorOf(const ServerReflectionResponse& response) {
    return absl::Status(static_cast<absl::StatusCode>(response.error_response().error_code()),
                        response.error_response().error_message());
  }

  bool Lookup(const std::string& name, pb::FileDescriptorProto* output) const {
    auto it = files_.find(name);
    if (it == files_.end()) return false;
    *output = it->second;
    return true;
  }

  // Sends `request`; keeps every file of the answer and returns `name` (or,
  // if empty, the answer's first file).
  bool AskForFile(const ServerReflectionRequest& request, std::string name,
                  pb::FileDescriptorProto* output) {
    absl::StatusOr<ServerReflectionResponse> response = Ask(request);
    if (!response.ok() || response->has_error_response()) return false;
    for (const std::string& bytes : response->file_descriptor_response().file_descriptor_proto()) {
      pb::FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) {
        call_error_ = absl::DataLossError("the server sent a malformed FileDescriptorProto");
        return false;
      }
      if (name.empty()) name = file.name();
      files_.emplace(file.name(), std::move(file));
    }
    return !name.empty() && Lookup(name, output);
  }

  // One request on the stream, opened on first use: v1, or v1alpha if the
  // server does not serve v1.
  absl::StatusOr<ServerReflectionResponse> Ask(const ServerReflectionRequest& request) {
    if (!call_error_.ok()) return call_error_;  // a failed stream stays failed
    while (true) {
      if (stream_ == nullptr) {
        ctx_ = std::make_unique<ClientContext>();
        ctx_->set_timeout(timeout_);
        for (const auto& [key, value] : metadata_) ctx_->AddMetadata(key, value);
        stream_ = stub_.BidiStreamingCall(ctx_.get(), kReflectionMethods[method_]);
      }
      ByteBuffer in;
      if (stream_->Write(ByteBuffer(request.SerializeAsString())) && stream_->Read(&in)) {
        ServerReflectionResponse response;
        if (!response.ParseFromString(in.data())) {
          call_error_ = absl::DataLossError("the server sent a malformed ServerReflectionResponse");
          return call_error_;
        }
        return response;
      }
      absl::Status status = Close();
      if (status.ok()) status = absl::InternalError("the reflection stream ended without an answer");
      if (status.code() == absl::StatusCode::kUnimplemented && method_ + 1 < 2) {
        ++method_;  // try v1alpha
        continue;
      }
      if (status.code() == absl::StatusCode::kUnimplemented) {
        status = absl::UnimplementedError(absl::StrCat(
            "the server does not serve reflection (grpc.reflection.v1 nor v1alpha ",
            "ServerReflection: ", status.message(),
            "); give its .proto files with --proto FILE [-I DIR]"));
      } else {
        status = absl::Status(status.code(),
                              absl::StrCat("reflection call failed: ", status.message()));
      }
      call_error_ = FromCall(status);
      return call_error_;
    }
  }

  absl::Status Close() {
    if (stream_ == nullptr) return absl::OkStatus();
    stream_->WritesDone();
    ByteBuffer rest;
    while (stream_->Read(&rest)) {
    }
    absl::Status status = stream_->Finish();
    stream_.reset();
    ctx_.reset();
    return status;
  }

  GenericStub stub_;
  const Metadata metadata_;
  const absl::Duration timeout_;
  int method_ = 0;  // index into kReflectionMethods
  std::unique_ptr<ClientContext> ctx_;
  std::unique_ptr<GenericClientReaderWriter> stream_;
  absl::Status call_error_;
  absl::flat_hash_map<std::string, pb::FileDescriptorProto> files_;
};

class ReflectionDescriptorSource final : public DescriptorSource {
 public:
  ReflectionDescriptorSource(std::shared_ptr<Channel> channel, Metadata metadata,
                             absl::Duration timeout)
      : database_(std::move(channel), std::move(metadata), timeout), pool_(&database_) {}

  absl::StatusOr<std::vector<std::string>> ListServices() override {
    return database_.ListServices();
  }
  const pb::DescriptorPool* pool() const override { return &pool_; }
  void EndLookups() override { database_.EndStream(); }

 protected:
  absl::Status LastError() const override { return database_.call_error(); }

 private:
  ReflectionDatabase database_;
  pb::DescriptorPool pool_;  // after database_, which it uses
};

// Collects protoc's messages for one INVALID_ARGUMENT.
class ErrorCollector final : public pb::compiler::MultiFileErrorCollector {
 public:
  void AddError(const std::string& filename, int line, int column,
                const std::string& message) override {
    errors_.push_back(line < 0 ? absl::StrCat(filename, ": ", message)
                               : absl::StrCat(filename, ":", line + 1, ":", column + 1, ": ",
                                              message));
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

class ProtoFileDescriptorSource final : public DescriptorSource {
 public:
  absl::Status Load(const std::vector<std::string>& files,
                    const std::vector<std::string>& import_paths) {
    std::vector<std::string> paths = import_paths;
    if (paths.empty()) {  // each file's own directory, as if given with -I
      for (const std::string& file : files) {
        size_t slash = file.rfind('/');
        paths.push_back(slash == std::string::npos ? "." : file.substr(0, slash + 1));
      }
    }
    for (const std::string& path : paths) tree_.MapPath("", path);
    // The well-known types (google/protobuf/*.proto) need no -I.
    struct stat st;
    if (::stat("/usr/include/google/protobuf/descriptor.proto", &st) == 0) {
      tree_.MapPath("google/protobuf", "/usr/include/google/protobuf");
    }
    for (const std::string& file : files) {
      if (::stat(file.c_str(), &st) != 0) {
        return absl::NotFoundError(absl::StrCat("--proto ", file, ": no such file"));
      }
      std::string virtual_file, shadowing;
      if (tree_.DiskFileToVirtualFile(file, &virtual_file, &shadowing) !=
          pb::compiler::DiskSourceTree::SUCCESS) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--proto ", file, " is not inside any import path (-I): ", absl::StrJoin(paths, ", ")));
      }
      const pb::FileDescriptor* descriptor = importer_.Import(virtual_file);
      if (descriptor == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot parse --proto ", file, ": ", errors_.Joined()));
      }
      for (int i = 0; i < descriptor->service_count(); ++i) {
        services_.push_back(descriptor->service(i)->full_name());
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListServices() override { return services_; }
  const pb::DescriptorPool* pool() const override { return importer_.pool(); }

 private:
  pb::compiler::DiskSourceTree tree_;
  ErrorCollector errors_;
  pb::compiler::Importer importer_{&tree_, &errors_};
  std::vector<std::string> services_;
};

std::string Names(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<const pb::FileDescriptor*> DescriptorSource::FindFileContainingSymbol(
    const std::string& symbol) {
  absl::string_view name = symbol;
  absl::ConsumePrefix(&name, ".");
  if (name.empty()) return absl::InvalidArgumentError("an empty symbol name");
  const pb::FileDescriptor* file = pool()->FindFileContainingSymbol(std::string(name));
  if (file != nullptr) return file;
  IPCRPC_RETURN_IF_ERROR(LastError());
  return absl::NotFoundError(absl::StrCat("symbol \"", name, "\" not found"));
}

absl::StatusOr<const pb::ServiceDescriptor*> DescriptorSource::FindService(
    const std::string& name) {
  absl::StatusOr<const pb::FileDescriptor*> file = FindFileContainingSymbol(name);
  const pb::ServiceDescriptor* service =
      file.ok() ? pool()->FindServiceByName(std::string(absl::StripPrefix(name, "."))) : nullptr;
  if (service != nullptr) return service;
  if (!file.ok() && file.status().code() != absl::StatusCode::kNotFound) return file.status();
  absl::StatusOr<std::vector<std::string>> services = ListServices();
  return absl::NotFoundError(
      absl::StrCat("unknown service \"", name, "\" (services: ",
                   services.ok() ? Names(*services) : std::string(services.status().message()),
                   ")"));
}

absl::StatusOr<const pb::MethodDescriptor*> DescriptorSource::FindMethod(const std::string& name) {
  absl::string_view rest = name;
  absl::ConsumePrefix(&rest, "/");
  std::string service_name, method_name;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    service_name = std::string(rest.substr(0, slash));
    method_name = std::string(rest.substr(slash + 1));
  } else if (size_t dot = rest.rfind('.'); dot != absl::string_view::npos) {
    service_name = std::string(rest.substr(0, dot));
    method_name = std::string(rest.substr(dot + 1));
  }
  if (service_name.empty() || method_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", name, "\" is not a method name: write pkg.Service/Method"));
  }
  absl::StatusOr<const pb::ServiceDescriptor*> service = FindService(service_name);
  if (!service.ok()) return service.status();
  if (const pb::MethodDescriptor* method = (*service)->FindMethodByName(method_name)) {
    return method;
  }
  std::vector<std::string> methods;
  for (int i = 0; i < (*service)->method_count(); ++i) {
    methods.push_back((*service)->method(i)->name());
  }
  return absl::NotFoundError(absl::StrCat("service ", service_name, " has no method \"",
                                          method_name, "\" (methods: ", Names(methods), ")"));
}

absl::StatusOr<std::string> DescriptorSource::Describe(const std::string& symbol) {
  std::string name(absl::StripPrefix(symbol, "."));
  if (size_t slash = name.find('/'); slash != std::string::npos) name[slash] = '.';
  absl::StatusOr<const pb::FileDescriptor*> file = FindFileContainingSymbol(name);
  if (!file.ok()) return file.status();
  const pb::DescriptorPool& pool = *this->pool();
  if (const auto* d = pool.FindServiceByName(name)) {
    return absl::StrCat(d->full_name(), " is a service:\n", d->DebugString());
  }
  if (const auto* d = pool.FindMethodByName(name)) {
    return absl::StrCat(d->full_name(), " is a method:\n", d->DebugString());
  }
  if (const auto* d = pool.FindMessageTypeByName(name)) {
    return absl::StrCat(d->full_name(), " is a message:\n", d->DebugString());
  }
  if (const auto* d = pool.FindEnumTypeByName(name)) {
    return absl::StrCat(d->full_name(), " is an enum:\n", d->DebugString());
  }
  if (const auto* d = pool.FindFieldByName(name)) {
    return absl::StrCat(d->full_name(), " is a field of ", d->containing_type()->full_name(),
                        ":\n", d->DebugString());
  }
  if (const auto* d = pool.FindExtensionByName(name)) {
    return absl::StrCat(d->full_name(), " is an extension:\n", d->DebugString());
  }
  if (const auto* d = pool.FindEnumValueByName(name)) {
    return absl::StrCat(d->full_name(), " is a value of enum ", d->type()->full_name(), ":\n",
                        d->DebugString());
  }
  if (const auto* d = pool.FindOneofByName(name)) {
    return absl::StrCat(d->full_name(), " is a oneof:\n", d->DebugString());
  }
  return absl::StrCat(name, " is declared in ", (*file)->name(), ":\n", (*file)->DebugString());
}

std::unique_ptr<DescriptorSource> ReflectionSource(std::shared_ptr<Channel> channel,
                                                   Metadata metadata, absl::Duration timeout) {
  return std::make_unique<ReflectionDescriptorSource>(std::move(channel), std::move(metadata),
                                                      timeout);
}

absl::StatusOr<std::unique_ptr<DescriptorSource>> ProtoFileSource(
    const std::vector<std::string>& files, const std::vector<std::string>& import_paths) {
  auto source = std::make_unique<ProtoFileDescriptorSource>();
  absl::Status status = source->Load(files, import_paths);
  if (!status.ok()) return status;
  return std::unique_ptr<DescriptorSource>(std::move(source));
}

}  // namespace ipcrpc::cli
