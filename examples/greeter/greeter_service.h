// The example Greeter implementation, shared by greeter_server (which listens
// on an address) and spawned workers (which serve an inherited socketpair).

#ifndef IPCRPC_EXAMPLES_GREETER_GREETER_SERVICE_H_
#define IPCRPC_EXAMPLES_GREETER_GREETER_SERVICE_H_

#include "examples/greeter/greeter.ipcrpc.pb.h"

namespace demo {

class GreeterImpl final : public Greeter::Service {
 public:
  absl::Status SayHello(ipcrpc::ServerContext* context, const HelloRequest* request,
                        HelloReply* reply) override;
  absl::Status LotsOfReplies(ipcrpc::ServerContext* context, const HelloRequest* request,
                             ipcrpc::ServerWriter<HelloReply>* writer) override;
  absl::Status LotsOfGreetings(ipcrpc::ServerContext* context,
                               ipcrpc::ServerReader<HelloRequest>* reader,
                               HelloReply* reply) override;
  absl::Status Chat(ipcrpc::ServerContext* context,
                    ipcrpc::ServerReaderWriter<HelloReply, HelloRequest>* stream) override;
};

}  // namespace demo

#endif  // IPCRPC_EXAMPLES_GREETER_GREETER_SERVICE_H_
