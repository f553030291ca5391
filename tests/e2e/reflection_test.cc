// grpc.reflection.v1 and v1alpha (runtime/reflection.h) in real processes:
// test_server --reflection (ServerBuilder::EnableReflection) asked every kind
// of request through a GenericStub, with hand-serialized messages, as any
// reflection client (grpcurl, the ipcrpc CLI) would.

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "proto/grpc/reflection/v1/reflection.pb.h"
#include "proto/grpc/reflection/v1alpha/reflection.pb.h"
#include "runtime/generic_stub.h"
#include "runtime/ipcrpc.h"
#include "tests/e2e/server_process.h"

namespace ipcrpc::test {
namespace {

using google::protobuf::FileDescriptorProto;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

constexpr char kV1[] = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
constexpr char kV1Alpha[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// One ServerReflectionInfo stream; Ask sends one request and reads its answer.
class ReflectionStream {
 public:
  ReflectionStream(std::shared_ptr<Channel> channel, const char* method)
      : stub_(std::move(channel)) {
    ctx_.set_timeout(absl::Seconds(10));
    stream_ = stub_.BidiStreamingCall(&ctx_, method);
  }
  ~ReflectionStream() {
    stream_->WritesDone();
    ByteBuffer rest;
    while (stream_->Read(&rest)) {
    }
    stream_->Finish().IgnoreError();
  }

  // v1 messages; for v1alpha the bytes are the same.
  ServerReflectionResponse Ask(const ServerReflectionRequest& request) {
    ServerReflectionResponse response;
    ByteBuffer in;
    EXPECT_TRUE(stream_->Write(ByteBuffer(request.SerializeAsString())));
    EXPECT_TRUE(stream_->Read(&in));
    EXPECT_TRUE(response.ParseFromString(in.data()));
    return response;
  }

 private:
  GenericStub stub_;
  ClientContext ctx_;
  std::unique_ptr<GenericClientReaderWriter> stream_;
};

ServerReflectionRequest Symbol(const std::string& symbol) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  return request;
}

// The names of the files in a file_descriptor_response, in order.
std::vector<std::string> FileNames(const ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    names.push_back(file.name());
  }
  return names;
}

std::vector<std::string> ServiceNames(const ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<Channel>> channel = CreateChannel(server_.address());
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = *channel;
  }

  ServerProcess server_{{"--reflection", "--health", "--generic_echo"}};
  std::shared_ptr<Channel> channel_;
};

TEST_F(ReflectionTest, ListServicesOnBothVersions) {
  for (const char* method : {kV1, kV1Alpha}) {
    ReflectionStream stream(channel_, method);
    ServerReflectionRequest request;
    request.set_host("localhost");
    request.set_list_services("*");
    ServerReflectionResponse response = stream.Ask(request);
    EXPECT_EQ(response.valid_host(), "localhost");
    EXPECT_EQ(response.original_request().list_services(), "*");
    EXPECT_EQ(ServiceNames(response),
              (std::vector<std::string>{
                  "ipcrpc.test.TestService", "ipcrpc.test.FdService",
                  "ipcrpc.test.SharedBufferService", "grpc.health.v1.Health",
                  "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
                  "ipcrpc.test.dynamic.DynamicEcho"}))
        << method;
  }
}

TEST_F(ReflectionTest, FileContainingSymbolSendsTransitiveDependenciesOncePerStream) {
  ReflectionStream stream(channel_, kV1);
  // The service: its file, then what it imports.
  ServerReflectionResponse response = stream.Ask(Symbol("ipcrpc.test.TestService"));
  EXPECT_EQ(FileNames(response), (std::vector<std::string>{"tests/e2e/test_service.proto",
                                                           "google/protobuf/empty.proto"}));
  // The files build a pool that describes the service completely.
  google::protobuf::DescriptorPool pool;
  for (const std::string& bytes :
       std::vector<std::string>(response.file_descriptor_response().file_descriptor_proto().rbegin(),
                                response.file_descriptor_response().file_descriptor_proto().rend())) {
    FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    ASSERT_NE(pool.BuildFile(file), nullptr) << file.name();
  }
  const google::protobuf::ServiceDescriptor* service =
      pool.FindServiceByName("ipcrpc.test.TestService");
  ASSERT_NE(service, nullptr);
  const google::protobuf::MethodDescriptor* bidi = service->FindMethodByName("Bidi");
  ASSERT_NE(bidi, nullptr);
  EXPECT_TRUE(bidi->client_streaming() && bidi->server_streaming());
  EXPECT_EQ(service->FindMethodByName("LastCancel")->input_type()->full_name(),
            "google.protobuf.Empty");

  // Already sent on this stream: not again (as gRPC does).
  EXPECT_TRUE(stream.Ask(Symbol("ipcrpc.test.Request")).has_file_descriptor_response());
  EXPECT_EQ(FileNames(stream.Ask(Symbol("ipcrpc.test.Request"))), std::vector<std::string>{});
  // A new stream starts afresh, and methods and fields are symbols too.
  ReflectionStream other(channel_, kV1Alpha);
  EXPECT_EQ(FileNames(other.Ask(Symbol("ipcrpc.test.TestService.Echo"))).front(),
            "tests/e2e/test_service.proto");
  ReflectionStream third(channel_, kV1);
  EXPECT_EQ(FileNames(third.Ask(Symbol("ipcrpc.test.Request.text"))).front(),
            "tests/e2e/test_service.proto");
}

TEST_F(ReflectionTest, FileByFilename) {
  ReflectionStream stream(channel_, kV1);
  ServerReflectionRequest request;
  request.set_file_by_filename("proto/grpc/health/v1/health.proto");
  EXPECT_EQ(FileNames(stream.Ask(request)),
            std::vector<std::string>{"proto/grpc/health/v1/health.proto"});
  request.set_file_by_filename("google/protobuf/empty.proto");
  EXPECT_EQ(FileNames(stream.Ask(request)),
            std::vector<std::string>{"google/protobuf/empty.proto"});
}

TEST_F(ReflectionTest, UnknownNamesAreNotFoundAndTheStreamGoesOn) {
  ReflectionStream stream(channel_, kV1);
  ServerReflectionRequest file;
  file.set_file_by_filename("no/such.proto");
  ServerReflectionRequest extension;
  extension.mutable_file_containing_extension()->set_containing_type("no.Such");
  ServerReflectionRequest numbers;
  numbers.set_all_extension_numbers_of_type("no.Such");
  ServerReflectionRequest unknown_number;
  unknown_number.mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.MessageOptions");
  unknown_number.mutable_file_containing_extension()->set_extension_number(49999);
  for (const ServerReflectionRequest& request :
       {Symbol("no.such.Service"), Symbol(""), file, extension, numbers, unknown_number}) {
    ServerReflectionResponse response = stream.Ask(request);
    ASSERT_TRUE(response.has_error_response()) << request.ShortDebugString();
    EXPECT_EQ(response.error_response().error_code(), static_cast<int>(absl::StatusCode::kNotFound));
    EXPECT_FALSE(response.error_response().error_message().empty());
  }
  // A request with nothing set: UNIMPLEMENTED, as gRPC answers.
  EXPECT_EQ(stream.Ask(ServerReflectionRequest()).error_response().error_code(),
            static_cast<int>(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(FileNames(stream.Ask(Symbol("grpc.health.v1.Health"))),
            std::vector<std::string>{"proto/grpc/health/v1/health.proto"});
}

// ipcrpc.test.dynamic.DynamicEcho is served by a GenericService and
// described by a DescriptorPool given to EnableReflection.
TEST_F(ReflectionTest, ExtraPoolDescribesAGenericServiceAndItsExtensions) {
  ReflectionStream stream(channel_, kV1);
  EXPECT_EQ(FileNames(stream.Ask(Symbol("ipcrpc.test.dynamic.DynamicEcho"))),
            (std::vector<std::string>{"ipcrpc/test/dynamic_echo.proto",
                                      "google/protobuf/descriptor.proto"}));

  ReflectionStream extensions(channel_, kV1);
  ServerReflectionRequest request;
  request.mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.MessageOptions");
  request.mutable_file_containing_extension()->set_extension_number(50001);
  EXPECT_EQ(FileNames(extensions.Ask(request)).front(), "ipcrpc/test/dynamic_echo.proto");

  ServerReflectionRequest numbers;
  numbers.set_all_extension_numbers_of_type("google.protobuf.MessageOptions");
  ServerReflectionResponse response = extensions.Ask(numbers);
  EXPECT_EQ(response.all_extension_numbers_response().base_type_name(),
            "google.protobuf.MessageOptions");
  EXPECT_EQ(std::vector<int>(response.all_extension_numbers_response().extension_number().begin(),
                             response.all_extension_numbers_response().extension_number().end()),
            std::vector<int>{50001});
}

// The v1alpha messages are v1's under another package: the typed v1alpha
// classes read what the server sends.
TEST_F(ReflectionTest, V1AlphaTypedMessages) {
  ReflectionStream stream(channel_, kV1Alpha);
  ServerReflectionResponse v1_response = stream.Ask(Symbol("grpc.health.v1.Health"));
  grpc::reflection::v1alpha::ServerReflectionResponse alpha;
  ASSERT_TRUE(alpha.ParseFromString(v1_response.SerializeAsString()));
  EXPECT_EQ(alpha.original_request().file_containing_symbol(), "grpc.health.v1.Health");
  EXPECT_EQ(alpha.file_descriptor_response().file_descriptor_proto_size(), 1);
}

TEST(ReflectionDisabledTest, OffUnlessEnabled) {
  ServerProcess server;
  auto channel = CreateChannel(server.address());
  ASSERT_TRUE(channel.ok());
  GenericStub stub(*channel);
  ClientContext ctx;
  auto stream = stub.BidiStreamingCall(&ctx, kV1);
  ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(ByteBuffer(request.SerializeAsString()));
  stream->WritesDone();
  ByteBuffer response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace ipcrpc::test
