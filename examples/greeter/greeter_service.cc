#include "examples/greeter/greeter_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace demo {

absl::Status GreeterImpl::SayHello(ipcrpc::ServerContext* context,
                                   const HelloRequest* request, HelloReply* reply) {
  if (request->name().empty()) {
    return absl::InvalidArgumentError("name must not be empty");
  }
  context->AddTrailingMetadata("served-by-pid", std::to_string(getpid()));
  reply->set_message(absl::StrCat("Hello, ", request->name(), "!"));
  return absl::OkStatus();
}

absl::Status GreeterImpl::LotsOfReplies(ipcrpc::ServerContext* context,
                                        const HelloRequest* request,
                                        ipcrpc::ServerWriter<HelloReply>* writer) {
  for (const char* greeting : {"Hello", "Bonjour", "Hola", "Hallo", "Ciao"}) {
    HelloReply reply;
    reply.set_message(absl::StrCat(greeting, ", ", request->name(), "!"));
    if (!writer->Write(reply)) return absl::CancelledError("client went away");
  }
  return absl::OkStatus();
}

absl::Status GreeterImpl::LotsOfGreetings(ipcrpc::ServerContext* context,
                                          ipcrpc::ServerReader<HelloRequest>* reader,
                                          HelloReply* reply) {
  std::vector<std::string> names;
  HelloRequest request;
  while (reader->Read(&request)) names.push_back(request.name());
  reply->set_message(absl::StrCat("Hello, ", absl::StrJoin(names, " and "), "!"));
  return absl::OkStatus();
}

absl::Status GreeterImpl::Chat(ipcrpc::ServerContext* context,
                               ipcrpc::ServerReaderWriter<HelloReply, HelloRequest>* stream) {
  HelloRequest line;
  while (stream->Read(&line)) {
    HelloReply reply;
    reply.set_message(absl::StrCat("You said: ", line.name()));
    if (!stream->Write(reply)) break;
  }
  return absl::OkStatus();
}

}  // namespace demo
