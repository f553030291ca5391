// ipcrpc: serving services to other processes.
//
// Build a Server with a ServerBuilder: give it addresses to listen on (or
// already-connected transports, e.g. a spawned worker's inherited socketpair),
// register services, then BuildAndStart(). Each connection multiplexes many
// concurrent calls.
//
// Where handlers run (docs/DESIGN.md, "Threads and locks"): a unary or
// server-streaming handler runs on the thread that read its request from the
// connection, with no thread hand-off; if it holds the connection for more
// than 1 ms, another thread takes over reading it, so a slow handler never
// stalls its connection. Client-streaming and bidi handlers, and
// single-request handlers beyond ServerOptions::num_threads running that way
// at once, run on a bounded pool of num_threads threads.
//
// Thread-safety: every Server method is thread-safe. Services registered with
// the builder must outlive the Server.
//
// Shutdown: Shutdown(deadline) stops accepting connections and calls, removes
// socket files, lets calls in flight finish until `deadline`, then cancels
// the rest (their handlers see ServerContext::IsCancelled()), closes every
// connection (so a handler blocked writing to a client that stopped reading
// returns too) and waits for the handlers to return. It returns by
// `deadline` unless a handler ignores cancellation. The destructor shuts
// down with an immediate deadline if Shutdown was not called.
//
// Example:
//   GreeterImpl service;
//   ipcrpc::ServerBuilder builder;
//   builder.AddListeningAddress("unix:/run/greeter.sock").RegisterService(&service);
//   absl::StatusOr<std::unique_ptr<ipcrpc::Server>> server = builder.BuildAndStart();
//   if (!server.ok()) return server.status();
//   (*server)->Wait();

#ifndef IPCRPC_RUNTIME_SERVER_H_
#define IPCRPC_RUNTIME_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/ipcrpc/config.pb.h"
#include "runtime/access_policy.h"
#include "runtime/channel.h"
#include "runtime/interceptor.h"
#include "runtime/service.h"
#include "transports/transport.h"

namespace ipcrpc {

class GenericService;
class HealthService;
class ProtoServerReflection;
struct ReflectionOptions;

namespace internal {
class InterceptedServices;
class ServerCore;
}  // namespace internal

struct ServerOptions {
  // Threads that run client- and bidi-streaming handlers (the pool), and the
  // most unary / server-streaming handlers that run at once on connections'
  // reading threads (see docs/DESIGN.md); single-request calls beyond that go
  // to the pool too. A streaming handler holds its pool thread for the whole
  // call, so size this above the number of concurrent streams expected.
  int num_threads = 16;
  // Calls waiting for a pool thread beyond this are refused with
  // RESOURCE_EXHAUSTED.
  size_t max_queued_calls = 4096;
  // Largest message accepted from clients and sent to them.
  size_t max_message_size = kDefaultMaxMessageSize;
  // Most concurrent calls on one connection; more fail RESOURCE_EXHAUSTED.
  uint32_t max_concurrent_streams_per_connection = 1024;
  // Most calls in progress on the whole server (every connection together);
  // a call beyond it is refused with RESOURCE_EXHAUSTED before its handler
  // runs, and the connection stays usable. 0: no server-wide limit (each
  // connection still has its own, above), as gRPC has none.
  size_t max_concurrent_calls = 0;
  // Bytes a client may send on one stream before the handler reads them.
  uint32_t stream_window_bytes = 1 << 20;
  // Who may connect to the listening addresses (runtime/access_policy.h).
  // Default: the server's own user and root.
  AccessPolicy access_policy;
  // Permission bits of a listening socket's file (unix:/path). Connecting
  // needs write permission, so 0600 admits the owner only and 0660 its group
  // too. The access policy is checked as well.
  uint32_t socket_mode = 0600;
  // A call whose client metadata exceeds either limit (bytes: each entry
  // counted as key + value + 32; entries) is refused with RESOURCE_EXHAUSTED
  // before its handler runs; frames other than MESSAGE larger than
  // max_metadata_bytes + 16 KiB are discarded unread (a CALL_START is then
  // refused the same way). The connection stays usable. A handler whose
  // initial or trailing metadata exceeds them ends RESOURCE_EXHAUSTED.
  size_t max_metadata_bytes = kDefaultMaxMetadataBytes;
  size_t max_metadata_entries = kDefaultMaxMetadataEntries;
  // Most connections served at once, in all and from one peer uid; a
  // connection beyond either is refused before HELLO with RESOURCE_EXHAUSTED
  // (the client's call gets it). Each connection costs ~2 fds, and a thread
  // unless it is a unix-socket connection (those wait in the event loop).
  size_t max_connections = 1024;
  size_t max_connections_per_uid = 1024;
  // A connection must complete HELLO within handshake_timeout, or it is
  // closed. A connection without calls for idle_timeout is sent GOAWAY and
  // closed (a client's next call reconnects); zero disables. A connection
  // without calls for keepalive_time is sent a PING; unanswered within
  // keepalive_timeout, it is closed too (zero keepalive_time disables).
  // Checked every quarter of the shortest of these (at least 5 ms, at most
  // 1 s), so they are met within that much.
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Minutes(30);
  absl::Duration keepalive_time = absl::Hours(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Most client-streaming and bidi handlers one connection may have on the
  // pool (running or queued) at once; each holds a pool thread for its whole
  // call. Beyond it, a new such call on that connection is refused at once
  // with RESOURCE_EXHAUSTED, so that one client cannot take every pool
  // thread. 0: num_threads / 2 (at least 1).
  uint32_t max_streaming_handlers_per_connection = 0;
  // Responses are compressed with this algorithm unless a handler's
  // ServerContext::set_compression_algorithm says otherwise — and only to
  // clients that accept it (runtime/compression.h). Default: none.
  CompressionAlgorithm default_compression_algorithm = CompressionAlgorithm::kNone;
  // Whether this server tells clients it can decompress requests (HELLO's
  // accept_compression). false: clients never compress to it.
  bool accept_compression = true;
  // Shared buffers (runtime/shared_buffer.h): whether this side takes part
  // (HELLO's shared_buffers; false: peers never send it any, and allocation
  // fails FAILED_PRECONDITION), the most bytes of segments this side's pool
  // holds per connection (allocation beyond fails RESOURCE_EXHAUSTED), and the
  // size of its smallest segment (an arena that small buffers share).
  bool shared_buffers = true;
  uint64_t shared_buffer_pool_bytes = uint64_t{2} << 30;
  uint64_t shared_buffer_arena_bytes = uint64_t{64} << 20;
  // The most file descriptors this server accepts with one request message
  // (HELLO's max_fds_per_message, runtime/file_descriptor.h); capped at 253
  // and at what the transport can pass. 0: clients never send it one (their
  // call fails FAILED_PRECONDITION before sending).
  uint32_t max_fds_per_message = 253;
};

// What the server's limits refused or closed since it started, and what it
// holds now (Server::GetStats()). Every counter names the option that caused
// it, so a refusal a client reports can be traced to the limit on this side.
struct ServerStats {
  uint64_t connections_accepted = 0;  // served (HELLO answered or about to be)
  // Refused with RESOURCE_EXHAUSTED before HELLO: max_connections or
  // max_connections_per_uid, or a thread the system refused.
  uint64_t connections_refused_limit = 0;
  uint64_t connections_refused_no_thread = 0;
  // Refused by the access policy (PERMISSION_DENIED), on any listener.
  uint64_t peers_refused = 0;
  // Closed by idle_timeout (after GOAWAY) and by an unanswered keep-alive PING.
  uint64_t connections_closed_idle = 0;
  uint64_t connections_closed_keepalive = 0;
  // Calls refused or ended RESOURCE_EXHAUSTED by a limit on what a client may
  // make the server hold: max_concurrent_streams_per_connection, the
  // streaming-handler share, a full handler queue (max_queued_calls),
  // metadata caps, max_message_size, a client ignoring its flow-control window.
  uint64_t calls_resource_exhausted = 0;
  // File descriptors clients sent that no frame declared (PROTOCOL.md §10):
  // closed on arrival; each such connection was closed as a protocol error.
  uint64_t undeclared_fds_closed = 0;
  // Now.
  uint64_t live_connections = 0;
  uint64_t active_calls = 0;
};

class Server {
 public:
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Blocks until the server has shut down, or, for a server with no
  // listening address (e.g. a spawned worker), until its last connection has
  // closed and its calls have finished.
  void Wait();

  // See the header comment. Calls after the first wait for it to complete.
  void Shutdown(absl::Time deadline = absl::Now());

  // Starts serving an already-connected transport (e.g. one end of a
  // socketpair). FAILED_PRECONDITION once shut down.
  absl::Status AddTransport(std::unique_ptr<Transport> transport);

  // The addresses being listened on, as given to the builder.
  std::vector<std::string> addresses() const;

  // Counters of the limits at work (see ServerStats). Thread-safe; cheap (a
  // few atomic loads), so it can be polled for metrics.
  ServerStats GetStats() const;

  // The health service (runtime/health.h) if the builder enabled it, else
  // null. Shutdown() makes every status NOT_SERVING and ends its Watch calls
  // first.
  HealthService* health_service() const { return health_.get(); }

 private:
  friend class ServerBuilder;
  Server(std::unique_ptr<HealthService> health, std::unique_ptr<ProtoServerReflection> reflection,
         std::unique_ptr<internal::InterceptedServices> intercepted,
         std::unique_ptr<internal::ServerCore> core);
  // All outlive core_, whose handlers use them. intercepted_: the services as
  // the core sees them when interceptors are set (null otherwise).
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<ProtoServerReflection> reflection_;
  std::unique_ptr<internal::InterceptedServices> intercepted_;
  std::unique_ptr<internal::ServerCore> core_;
};

class ServerBuilder {
 public:
  ServerBuilder() = default;

  // Listens on `address` (e.g. "unix:/run/x.sock"; see connect/address.h).
  ServerBuilder& AddListeningAddress(std::string address);
  // Serves an already-connected transport from the start.
  ServerBuilder& AddTransport(std::unique_ptr<Transport> transport);
  // Accepts connections from a listener made elsewhere (e.g. one with a
  // custom transport policy, connect/negotiation.h).
  ServerBuilder& AddListener(std::unique_ptr<Listener> listener);
  // Registers `service` (not owned; must outlive the server).
  ServerBuilder& RegisterService(Service* service);
  // Serves every method no registered service serves with `service`
  // (runtime/generic_service.h; not owned; must outlive the server). At most
  // one per server. Without one, such calls fail with UNIMPLEMENTED.
  ServerBuilder& RegisterGenericService(GenericService* service);
  // Serves grpc.health.v1.Health (runtime/health.h) with a HealthService the
  // server owns: "" and every registered service start SERVING; change them
  // through Server::health_service().
  ServerBuilder& EnableHealthService();
  // Serves gRPC's server reflection, grpc.reflection.v1 and v1alpha
  // (runtime/reflection.h), with a ProtoServerReflection the server owns: it
  // lists every registered service (health and reflection included) and
  // describes them from protobuf's generated pool. `options` adds pools and
  // service names, e.g. for what a GenericService serves. grpcpp's
  // equivalent is grpc::reflection::InitProtoReflectionServerBuilderPlugin().
  ServerBuilder& EnableReflection();
  ServerBuilder& EnableReflection(const ReflectionOptions& options);
  ServerBuilder& SetOptions(const ServerOptions& options);
  // ServerOptions::default_compression_algorithm (grpc::ServerBuilder's name).
  ServerBuilder& SetDefaultCompressionAlgorithm(CompressionAlgorithm algorithm);
  // Uses `config` (its `server` section: allowed transports, tuning, message
  // limit) instead of the file IPCRPC_CONFIG names.
  ServerBuilder& SetConfig(const config::ServerConfig& config);

  // grpcpp's builder.experimental().SetInterceptorCreators(...): every call
  // of every service (generic and health included) runs the interceptors
  // these make, in this order (runtime/interceptor.h). The server owns them.
  class experimental_type {
   public:
    explicit experimental_type(ServerBuilder* builder) : builder_(builder) {}
    void SetInterceptorCreators(
        std::vector<std::unique_ptr<experimental::ServerInterceptorFactoryInterface>> creators) {
      builder_->interceptor_creators_ = std::move(creators);
    }

   private:
    ServerBuilder* builder_;
  };
  experimental_type experimental() { return experimental_type(this); }

  // Starts listening and serving. Fails (and starts nothing) if an address
  // cannot be listened on, two services share a name, or nothing would be
  // served.
  absl::StatusOr<std::unique_ptr<Server>> BuildAndStart();

 private:
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<Service*> services_;
  std::vector<GenericService*> generic_services_;  // BuildAndStart accepts one
  bool health_enabled_ = false;
  std::shared_ptr<const ReflectionOptions> reflection_;  // set: reflection enabled
  ServerOptions options_;
  std::optional<config::ServerConfig> config_;
  std::vector<std::unique_ptr<experimental::ServerInterceptorFactoryInterface>>
      interceptor_creators_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SERVER_H_
