// ipcrpc_gateway: forwards calls between gRPC (TCP) and ipcrpc (local IPC),
// byte for byte, without .proto files (docs/GRPC_BRIDGE.md).
//
//   ipcrpc_gateway --grpc_listen=HOST:PORT --to=ADDRESS
//       gRPC clients → the ipcrpc server at ADDRESS (any local transport:
//       unix:/run/app.sock, shm:/run/app.sock, ...)
//       --tls_cert=FILE --tls_key=FILE   serve TLS instead of plain text
//
//   ipcrpc_gateway --listen=ADDRESS --to=grpc:HOST:PORT   (or grpcs:)
//       local ipcrpc clients at ADDRESS → the remote gRPC server
//       (grpcs: checks the server against IPCRPC_GRPC_ROOT_CERTS or the
//       system's roots)
//
// Common flags: --max_message_size=BYTES (default 4 MiB),
// --grace_ms=N (drain time on SIGTERM/SIGINT, default 2000).
// With --listen: --threads=N (default 64), the calls forwarded at once (each
// runs as a generic, i.e. bidi, handler on the ipcrpc server's pool; beyond
// N they queue, as ServerOptions::max_queued_calls says).
//
// Prints "READY grpc_port=N" (or "READY address=ADDRESS") on stdout once
// serving; SIGTERM or SIGINT drains and exits 0. Bad flags: a message and
// exit status 2; cannot listen: exit status 1.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "bridge/channel_forwarding_service.h"
#include "bridge/grpc_channel.h"
#include "bridge/grpc_forwarding_service.h"
#include "runtime/ipcrpc.h"

namespace {

constexpr char kUsage[] =
    "usage: ipcrpc_gateway --grpc_listen=HOST:PORT --to=LOCAL_ADDRESS "
    "[--tls_cert=FILE --tls_key=FILE]\n"
    "       ipcrpc_gateway --listen=LOCAL_ADDRESS --to=grpc:HOST:PORT|grpcs:HOST:PORT\n"
    "       common: [--max_message_size=BYTES] [--grace_ms=N]; with --listen: [--threads=N]\n";

struct Flags {
  std::string grpc_listen, listen, to, tls_cert, tls_key;
  uint64_t max_message_size = ipcrpc::kDefaultMaxMessageSize;
  int grace_ms = 2000;
  int threads = 64;
};

int Usage(const std::string& problem) {
  std::cerr << "ipcrpc_gateway: " << problem << "\n" << kUsage;
  return 2;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  *out = text.str();
  return static_cast<bool>(file) && !out->empty();
}

sigset_t BlockStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  return stop;
}

int ServeGrpcToLocal(const Flags& flags, const sigset_t& stop) {
  ipcrpc::ChannelOptions options;
  options.max_send_message_size = flags.max_message_size;
  options.max_receive_message_size = flags.max_message_size;
  // Shared buffers cannot cross to gRPC: the server is told this client
  // takes none, so it is never sent one (PROTOCOL.md §13).
  options.shared_buffers = false;
  options.max_fds_per_message = 0;  // descriptors cannot reach a gRPC client
  auto channel = ipcrpc::CreateChannel(flags.to, options);
  if (!channel.ok()) return Usage("--to: " + channel.status().ToString());
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!flags.tls_cert.empty() || !flags.tls_key.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadFile(flags.tls_cert, &pair.cert_chain)) return Usage("cannot read --tls_cert");
    if (!ReadFile(flags.tls_key, &pair.private_key)) return Usage("cannot read --tls_key");
    ssl.pem_key_cert_pairs.push_back(pair);
    credentials = grpc::SslServerCredentials(ssl);
  }
  ipcrpc::grpc_bridge::ForwardingGenericService service(*channel);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.grpc_listen, credentials, &port);
  // Another process on the same port must fail us, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(flags.max_message_size));
  builder.SetMaxSendMessageSize(static_cast<int>(flags.max_message_size));
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "ipcrpc_gateway: cannot listen on " << flags.grpc_listen << "\n";
    return 1;
  }
  std::cout << "READY grpc_port=" << port << std::endl;
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(flags.grace_ms)));
  server->Wait();
  return 0;
}

int ServeLocalToGrpc(const Flags& flags, const sigset_t& stop) {
  if (!absl::StartsWith(flags.to, "grpc:") && !absl::StartsWith(flags.to, "grpcs:")) {
    return Usage("with --listen, --to must be grpc:HOST:PORT or grpcs:HOST:PORT");
  }
  ipcrpc::ChannelOptions options;
  options.max_send_message_size = flags.max_message_size;
  options.max_receive_message_size = flags.max_message_size;
  auto channel = ipcrpc::grpc_bridge::CreateGrpcAddressChannel(flags.to, options);
  if (!channel.ok()) return Usage("--to: " + channel.status().ToString());
  ipcrpc::grpc_bridge::ChannelForwardingService service(*channel);
  ipcrpc::ServerOptions server_options;
  server_options.max_message_size = flags.max_message_size;
  // Shared buffers cannot cross to gRPC: local clients are never sent one,
  // and sending one here fails FAILED_PRECONDITION (PROTOCOL.md §13).
  server_options.shared_buffers = false;
  server_options.max_fds_per_message = 0;  // descriptors cannot reach a gRPC server
  // Every forwarded call is a generic (bidi) handler: let one client use
  // the whole pool, not the per-connection share meant for streaming calls.
  server_options.num_threads = flags.threads;
  server_options.max_streaming_handlers_per_connection = static_cast<uint32_t>(flags.threads);
  ipcrpc::ServerBuilder builder;
  builder.AddListeningAddress(flags.listen).RegisterGenericService(&service).SetOptions(
      server_options);
  auto server = builder.BuildAndStart();
  if (!server.ok()) {
    std::cerr << "ipcrpc_gateway: " << server.status() << "\n";
    return 1;
  }
  std::cout << "READY address=" << flags.listen << std::endl;
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  (*server)->Shutdown(absl::Now() + absl::Milliseconds(flags.grace_ms));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq), value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (eq == std::string::npos) return Usage("unknown argument " + arg);
    if (name == "--grpc_listen") {
      flags.grpc_listen = value;
    } else if (name == "--listen") {
      flags.listen = value;
    } else if (name == "--to") {
      flags.to = value;
    } else if (name == "--tls_cert") {
      flags.tls_cert = value;
    } else if (name == "--tls_key") {
      flags.tls_key = value;
    } else if (name == "--max_message_size") {
      if (!absl::SimpleAtoi(value, &flags.max_message_size) || flags.max_message_size == 0 ||
          flags.max_message_size > (1u << 30)) {
        return Usage("--max_message_size must be 1..1073741824");
      }
    } else if (name == "--threads") {
      if (!absl::SimpleAtoi(value, &flags.threads) || flags.threads < 1 || flags.threads > 4096) {
        return Usage("--threads must be 1..4096");
      }
    } else if (name == "--grace_ms") {
      if (!absl::SimpleAtoi(value, &flags.grace_ms) || flags.grace_ms < 0) {
        return Usage("--grace_ms must be a number >= 0");
      }
    } else {
      return Usage("unknown flag " + name);
    }
  }
  if (flags.to.empty()) return Usage("--to is required");
  if (flags.grpc_listen.empty() == flags.listen.empty()) {
    return Usage("give exactly one of --grpc_listen and --listen");
  }
  if (!flags.listen.empty() && (!flags.tls_cert.empty() || !flags.tls_key.empty())) {
    return Usage("--tls_cert/--tls_key go with --grpc_listen");
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return Usage("give both --tls_cert and --tls_key");
  }
  sigset_t stop = BlockStopSignals();
  return flags.grpc_listen.empty() ? ServeLocalToGrpc(flags, stop) : ServeGrpcToLocal(flags, stop);
}
