#include "tests/e2e/callback_test_service.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace ipcrpc::test {
namespace {

absl::Status RequestedStatus(const Request& r) {
  if (r.status_code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(r.status_code()), r.status_message());
}

// `count` responses, each carrying the request's text and payload, one
// write at a time as flow control allows.
class Streamer final : public ServerWriteReactor<Response> {
 public:
  explicit Streamer(const Request& r)
      : count_(r.count()), status_(RequestedStatus(r)) {
    response_.set_text(r.text());
    response_.set_payload(r.payload());
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(absl::CancelledError("a write failed: the call is over"));
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (index_ == count_) return Finish(status_);
    response_.set_index(index_++);
    StartWrite(&response_);
  }
  const int count_;
  const absl::Status status_;
  Response response_;
  int index_ = 0;
};

// Concatenates the requests' text; index = how many came.
class Collector final : public ServerReadReactor<Request> {
 public:
  explicit Collector(Response* response) : response_(response) { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      response_->set_index(count_);
      return Finish(absl::OkStatus());
    }
    ++count_;
    response_->mutable_text()->append(request_.text());
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  Response* const response_;
  Request request_;
  int count_ = 0;
};

// Echoes each request as it comes; a request with status_code ends the call
// with that status.
class Echoer final : public ServerBidiReactor<Request, Response> {
 public:
  Echoer() { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) return Finish(absl::OkStatus());
    if (request_.status_code() != 0) return Finish(RequestedStatus(request_));
    response_.set_text(request_.text());
    response_.set_payload(request_.payload());
    response_.set_index(index_++);
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(absl::CancelledError("a write failed: the call is over"));
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  Request request_;
  Response response_;
  int index_ = 0;
};

// Finishes only when told the call is cancelled (or its deadline passed).
class CancelWaiter final : public ServerUnaryReactor {
 public:
  CancelWaiter(CallbackTestService* service, absl::Time deadline)
      : service_(service), deadline_(deadline) {
    service_->SetLastCancel("waiting");
  }
  void OnCancel() override {
    // As the synchronous WaitForCancel: the client's CANCEL may come a
    // moment before the server's copy of the deadline passes.
    const bool deadline = absl::Now() + absl::Milliseconds(20) >= deadline_;
    service_->SetLastCancel(deadline ? "deadline" : "cancelled");
    Finish(absl::CancelledError(deadline ? "deadline" : "cancelled"));
  }
  void OnDone() override { delete this; }

 private:
  CallbackTestService* const service_;
  const absl::Time deadline_;
};

}  // namespace

ServerUnaryReactor* CallbackTestService::Echo(CallbackServerContext* ctx, const Request* request,
                                              Response* response) {
  for (const auto& [key, value] : ctx->client_metadata()) {
    absl::string_view name = key;
    if (absl::ConsumePrefix(&name, "echo-")) {
      ctx->AddInitialMetadata(absl::StrCat("initial-", name), value);
      ctx->AddTrailingMetadata(absl::StrCat("trailing-", name), value);
    }
  }
  response->set_text(request->text());
  response->set_payload(request->payload());
  response->set_peer_pid(ctx->peer().pid);
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status status = RequestedStatus(*request);
  if (request->delay_ms() > 0) {
    // Finished later from a thread of the application's: the call holds no
    // server thread meanwhile.
    std::thread([reactor, status, delay = absl::Milliseconds(request->delay_ms())] {
      absl::SleepFor(delay);
      reactor->Finish(status);
    }).detach();
  } else {
    reactor->Finish(status);
  }
  return reactor;
}

ServerWriteReactor<Response>* CallbackTestService::ServerStream(CallbackServerContext* ctx,
                                                                const Request* request) {
  return new Streamer(*request);
}

ServerReadReactor<Request>* CallbackTestService::ClientStream(CallbackServerContext* ctx,
                                                              Response* response) {
  return new Collector(response);
}

ServerBidiReactor<Request, Response>* CallbackTestService::Bidi(CallbackServerContext* ctx) {
  return new Echoer();
}

ServerUnaryReactor* CallbackTestService::WaitForCancel(CallbackServerContext* ctx,
                                                       const Request* request,
                                                       Response* response) {
  return new CancelWaiter(this, ctx->deadline());
}

absl::Status CallbackTestService::LastCancel(ServerContext* ctx,
                                             const google::protobuf::Empty* request,
                                             Response* response) {
  internal::MutexLock lock(&mu_);
  response->set_text(last_cancel_);
  return absl::OkStatus();
}

void CallbackTestService::SetLastCancel(std::string what) {
  internal::MutexLock lock(&mu_);
  last_cancel_ = std::move(what);
}

}  // namespace ipcrpc::test
