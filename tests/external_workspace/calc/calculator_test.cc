// Built in a workspace of its own that pulls ipcrpc in with local_repository:
// the generated code, the runtime and the transports all work from there.
#include "calc/calculator.ipcrpc.pb.h"
#include "gtest/gtest.h"
#include "runtime/ipcrpc.h"
#include "transports/unix_socket.h"

namespace {

class CalculatorImpl final : public calc::Calculator::Service {
  absl::Status Add(ipcrpc::ServerContext*, const calc::AddRequest* request,
                   calc::Sum* sum) override {
    sum->set_value(request->a() + request->b());
    return absl::OkStatus();
  }
  absl::Status Running(ipcrpc::ServerContext*,
                       ipcrpc::ServerReaderWriter<calc::Sum, calc::AddRequest>* stream) override {
    calc::AddRequest request;
    calc::Sum total;
    while (stream->Read(&request)) {
      total.set_value(total.value() + request.a() + request.b());
      if (!stream->Write(total)) break;
    }
    return absl::OkStatus();
  }
};

TEST(ExternalWorkspaceTest, CallsAcrossASocketpair) {
  auto pair = ipcrpc::MakeSocketPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  CalculatorImpl service;
  ipcrpc::ServerBuilder builder;
  builder.RegisterService(&service).AddTransport(std::move(pair->second));
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = calc::Calculator::NewStub(ipcrpc::CreateChannelFromTransport(std::move(pair->first)));

  ipcrpc::ClientContext ctx;
  calc::AddRequest request;
  request.set_a(40);
  request.set_b(2);
  calc::Sum sum;
  ASSERT_TRUE(stub->Add(&ctx, request, &sum).ok());
  EXPECT_EQ(sum.value(), 42);

  ipcrpc::ClientContext stream_ctx;
  auto running = stub->Running(&stream_ctx);
  for (int i = 1; i <= 3; ++i) {
    request.set_a(i);
    request.set_b(0);
    ASSERT_TRUE(running->Write(request));
    ASSERT_TRUE(running->Read(&sum));
  }
  EXPECT_EQ(sum.value(), 6);
  running->WritesDone();
  EXPECT_TRUE(running->Finish().ok());

  ipcrpc::ClientContext ping_ctx;
  google::protobuf::Empty empty;
  EXPECT_EQ(stub->Ping(&ping_ctx, empty, &empty).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
