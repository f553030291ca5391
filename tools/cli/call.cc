// call: any method, all four kinds, JSON in and out.

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/thread.h"
#include "runtime/client_context.h"
#include "runtime/generic_stub.h"
#include "tools/cli/commands.h"
#include "tools/cli/request_io.h"

namespace ipcrpc::cli {
namespace {

namespace pb = google::protobuf;

void PrintMetadata(const char* what, const Metadata& metadata) {
  for (const auto& [key, value] : metadata) {
    std::fprintf(stderr, "%s %s: %s\n", what, key.c_str(), value.c_str());
  }
}

// Prints one response as a JSON line.
absl::Status PrintResponse(MessageCodec& codec, const ByteBuffer& response) {
  absl::StatusOr<std::string> json = codec.ToJson(response);
  if (!json.ok()) return json.status();
  std::printf("%s\n", json->c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

// The one request of a unary or server-streaming call: the input's only
// object, or {} if the input is empty.
absl::StatusOr<ByteBuffer> SingleRequest(const pb::MethodDescriptor& method, RequestInput& input,
                                         MessageCodec& codec) {
  std::string json, extra;
  absl::StatusOr<bool> got = input.Next(&json);
  if (!got.ok()) return got.status();
  if (!*got) json = "{}";
  absl::StatusOr<bool> more = input.Next(&extra);
  if (!more.ok()) return more.status();
  if (*more) {
    return absl::InvalidArgumentError(absl::StrCat(
        method.full_name(), " takes one request, and the input has more than one JSON object"));
  }
  return codec.FromJson(json);
}

// Requests from `input` into `write` until the input ends; the first local
// error (bad JSON), if any, stops it.
template <typename WriteFn>
absl::Status SendRequests(RequestInput& input, MessageCodec& codec, WriteFn write) {
  std::string json;
  for (int n = 1;; ++n) {
    absl::StatusOr<bool> got = input.Next(&json);
    if (!got.ok()) return got.status();
    if (!*got) return absl::OkStatus();
    absl::StatusOr<ByteBuffer> request = codec.FromJson(json);
    if (!request.ok()) {
      return absl::Status(request.status().code(),
                          absl::StrCat("request ", n, ": ", request.status().message()));
    }
    if (!write(*request)) return absl::OkStatus();  // the call is over; Finish says why
  }
}

}  // namespace

int RunCall(const Options& options, DescriptorSource& source, std::shared_ptr<Channel> channel) {
  absl::StatusOr<const pb::MethodDescriptor*> found = source.FindMethod(options.positional[2]);
  if (!found.ok()) return ReportError(found.status());
  const pb::MethodDescriptor& method = **found;
  const std::string wire_name = absl::StrCat("/", method.service()->full_name(), "/", method.name());
  MessageCodec requests(method.input_type());
  MessageCodec responses(method.output_type(), options.emit_defaults);
  source.EndLookups();
  RequestInput input(options.data);
  GenericStub stub(std::move(channel));
  ClientContext ctx;
  if (options.timeout.has_value()) ctx.set_timeout(*options.timeout);
  for (const auto& [key, value] : options.metadata) ctx.AddMetadata(key, value);

  absl::Status local;   // our own failure (bad JSON, a response we cannot print)
  absl::Status status;  // the call's
  bool printed_initial = false;
  auto initial_metadata = [&] {
    if (options.verbose && !printed_initial) PrintMetadata("header", ctx.GetServerInitialMetadata());
    printed_initial = true;
  };
  if (!method.client_streaming()) {
    absl::StatusOr<ByteBuffer> request = SingleRequest(method, input, requests);
    if (!request.ok()) return ReportError(request.status());
    ByteBuffer response;
    if (!method.server_streaming()) {
      status = stub.UnaryCall(&ctx, wire_name, *request, &response);
      initial_metadata();
      if (status.ok()) local = PrintResponse(responses, response);
    } else {
      auto reader = stub.ServerStreamingCall(&ctx, wire_name, *request);
      while (local.ok() && reader->Read(&response)) {
        initial_metadata();
        local = PrintResponse(responses, response);
      }
      if (!local.ok()) ctx.TryCancel();
      status = reader->Finish();
      initial_metadata();
    }
  } else if (!method.server_streaming()) {
    ByteBuffer response;
    auto writer = stub.ClientStreamingCall(&ctx, wire_name, &response);
    local = SendRequests(input, requests, [&](const ByteBuffer& r) { return writer->Write(r); });
    if (!local.ok()) ctx.TryCancel();
    status = writer->Finish();
    initial_metadata();
    if (status.ok() && local.ok()) local = PrintResponse(responses, response);
  } else {
    auto stream = stub.BidiStreamingCall(&ctx, wire_name);
    std::mutex mu;
    absl::Status send_error;
    // Requests go out on their own thread as they arrive on stdin, while
    // this one prints responses as they come.
    absl::StatusOr<std::thread> sender = internal::StartThread([&] {
      absl::Status s =
          SendRequests(input, requests, [&](const ByteBuffer& r) { return stream->Write(r); });
      if (!s.ok()) {
        {
          std::lock_guard<std::mutex> lock(mu);
          send_error = s;
        }
        ctx.TryCancel();
        return;
      }
      stream->WritesDone();
    });
    if (!sender.ok()) {
      ctx.TryCancel();
      stream->Finish().IgnoreError();
      return ReportError(sender.status());
    }
    ByteBuffer response;
    while (local.ok() && stream->Read(&response)) {
      initial_metadata();
      local = PrintResponse(responses, response);
    }
    if (!local.ok()) ctx.TryCancel();
    input.Stop();  // the call is over: stop waiting for stdin
    sender->join();
    status = stream->Finish();
    initial_metadata();
    std::lock_guard<std::mutex> lock(mu);
    if (local.ok()) local = send_error;
  }
  if (options.verbose) PrintMetadata("trailer", ctx.GetServerTrailingMetadata());
  if (!local.ok()) return ReportError(local);
  if (!status.ok()) return ReportError(FromCall(status));
  return kExitOk;
}

}  // namespace ipcrpc::cli
