// The example Greeter served with the callback (reactor) API
// (runtime/server_callback.h): the same behaviour as greeter_service.cc, but
// a call waiting for its client holds no server thread.
//
//   greeter_callback_server unix:/tmp/greeter.sock
//
// Stops on SIGINT/SIGTERM, letting calls in flight finish for up to 2 s.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "examples/greeter/greeter.ipcrpc.pb.h"
#include "runtime/ipcrpc.h"

namespace demo {
namespace {

class CallbackGreeter final : public Greeter::CallbackService {
 public:
  ipcrpc::ServerUnaryReactor* SayHello(ipcrpc::CallbackServerContext* context,
                                       const HelloRequest* request, HelloReply* reply) override {
    auto* reactor = context->DefaultReactor();
    if (request->name().empty()) {
      reactor->Finish(absl::InvalidArgumentError("name must not be empty"));
      return reactor;
    }
    context->AddTrailingMetadata("served-by-pid", std::to_string(getpid()));
    reply->set_message(absl::StrCat("Hello, ", request->name(), "!"));
    reactor->Finish(absl::OkStatus());  // now, or later from any thread
    return reactor;
  }

  ipcrpc::ServerWriteReactor<HelloReply>* LotsOfReplies(ipcrpc::CallbackServerContext* context,
                                                        const HelloRequest* request) override {
    // Writes one greeting at a time; the next when the last is written.
    class Replies : public ipcrpc::ServerWriteReactor<HelloReply> {
     public:
      explicit Replies(std::string name) : name_(std::move(name)) { Next(); }
      void OnWriteDone(bool ok) override {
        ok ? Next() : Finish(absl::CancelledError("client went away"));
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        static constexpr const char* kGreetings[] = {"Hello", "Bonjour", "Hola", "Hallo", "Ciao"};
        if (next_ == 5) return Finish(absl::OkStatus());
        reply_.set_message(absl::StrCat(kGreetings[next_++], ", ", name_, "!"));
        StartWrite(&reply_);
      }
      const std::string name_;
      HelloReply reply_;
      int next_ = 0;
    };
    return new Replies(request->name());
  }

  ipcrpc::ServerReadReactor<HelloRequest>* LotsOfGreetings(ipcrpc::CallbackServerContext* context,
                                                           HelloReply* reply) override {
    // Reads every name, then answers once.
    class Greetings : public ipcrpc::ServerReadReactor<HelloRequest> {
     public:
      explicit Greetings(HelloReply* reply) : reply_(reply) { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) {  // the client is done sending
          reply_->set_message(absl::StrCat("Hello, ", absl::StrJoin(names_, " and "), "!"));
          return Finish(absl::OkStatus());
        }
        names_.push_back(request_.name());
        StartRead(&request_);
      }
      void OnDone() override { delete this; }

     private:
      HelloReply* const reply_;
      HelloRequest request_;
      std::vector<std::string> names_;
    };
    return new Greetings(reply);
  }

  ipcrpc::ServerBidiReactor<HelloRequest, HelloReply>* Chat(
      ipcrpc::CallbackServerContext* context) override {
    // Answers each line as it comes: read, write, read, ...
    class Chatter : public ipcrpc::ServerBidiReactor<HelloRequest, HelloReply> {
     public:
      Chatter() { StartRead(&line_); }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(absl::OkStatus());
        reply_.set_message(absl::StrCat("You said: ", line_.name()));
        StartWrite(&reply_);
      }
      void OnWriteDone(bool ok) override {
        ok ? StartRead(&line_) : Finish(absl::CancelledError("client went away"));
      }
      void OnDone() override { delete this; }

     private:
      HelloRequest line_;
      HelloReply reply_;
    };
    return new Chatter;
  }
};

absl::Status Serve(const char* address) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  CallbackGreeter service;
  ipcrpc::ServerBuilder builder;
  builder.RegisterService(&service).AddListeningAddress(address);
  IPCRPC_ASSIGN_OR_RETURN(std::unique_ptr<ipcrpc::Server> server, builder.BuildAndStart());
  std::printf("greeter_callback_server: listening on %s (pid %d)\n", address, getpid());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown(absl::Now() + absl::Seconds(2));
  return absl::OkStatus();
}

}  // namespace
}  // namespace demo

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: greeter_callback_server ADDRESS\n");
    return 2;
  }
  absl::Status status = demo::Serve(argv[1]);
  if (!status.ok()) {
    std::fprintf(stderr, "greeter_callback_server: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
