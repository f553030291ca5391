// ipcrpc: passing file descriptors in calls.
//
// Declare a field of type ipcrpc.FileDescriptor (proto/ipcrpc/file_descriptor.proto)
// in any request or response message — singular, repeated, nested, a map
// value, in unary calls and in streams — and the runtime sends the real
// descriptor with the message, over every transport (unix sockets pass it
// with SCM_RIGHTS on the socket itself; fifo, shm and msgq on their control
// socket).
//
// Sender: SetFd names a descriptor that the caller keeps owning; the kernel
// duplicates it into the receiver when the message is sent, so it must stay
// open until the call that sends the message (Write, the stub call, or the
// handler's return for a unary response) has returned.
//
// Receiver: the descriptors that came with the last message read on a call
// belong to the call's context; TakeFd moves one out as an owned ScopedFd.
// Those not taken are closed when the next message of that call is read or
// the context is destroyed (runtime/call_fds.h).
//
// Errors (the call's status): more than 253 descriptors in one message
// (SCM_MAX_FD) → INVALID_ARGUMENT, a descriptor that is not open →
// INVALID_ARGUMENT, a peer that does not accept descriptors (an older peer,
// one whose ChannelOptions/ServerOptions::max_fds_per_message is 0, the gRPC
// bridge; a generic/ByteBuffer call carries none) or a grpc: channel →
// FAILED_PRECONDITION, all before anything is sent; a receiver out of descriptors (EMFILE) →
// RESOURCE_EXHAUSTED for that call only. See docs/TRANSPORTS.md, "Passing
// file descriptors".
//
// Example (a worker that opens files for a sandboxed parent):
//   // server
//   absl::Status Open(ipcrpc::ServerContext* ctx, const OpenRequest* req,
//                     OpenReply* reply) override {
//     ipcrpc::ScopedFd fd(::open(req->path().c_str(), O_RDONLY | O_CLOEXEC));
//     if (!fd.valid()) return ipcrpc::ErrnoStatus(errno, req->path());
//     ipcrpc::AttachFd(ctx, reply->mutable_file(), std::move(fd));  // closed after the call
//     return absl::OkStatus();
//   }
//   // client
//   ipcrpc::ClientContext ctx;
//   OpenReply reply;
//   IPCRPC_RETURN_IF_ERROR(stub.Open(&ctx, req, &reply));
//   absl::StatusOr<ipcrpc::ScopedFd> file = ipcrpc::TakeFd(&ctx, reply.file());

#ifndef IPCRPC_RUNTIME_FILE_DESCRIPTOR_H_
#define IPCRPC_RUNTIME_FILE_DESCRIPTOR_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/scoped_fd.h"
#include "google/protobuf/message_lite.h"
#include "proto/ipcrpc/file_descriptor.pb.h"
#include "runtime/client_context.h"
#include "runtime/server_context.h"

namespace ipcrpc {

// Makes `field` name `fd` (borrowed; see above). A negative fd clears it.
inline void SetFd(FileDescriptor* field, int fd) {
  field->set_handle(fd < 0 ? 0 : static_cast<uint32_t>(fd) + 1);
}

// Makes `field` name `fd` and gives `fd` to the call, which keeps it open
// until the context is destroyed (after the message has been sent): the
// simplest way for a handler to return a descriptor in a unary response.
// In long streams prefer SetFd with a ScopedFd kept until Write returns, as
// attached descriptors stay open until the call ends.
inline void AttachFd(ServerContext* context, FileDescriptor* field, ScopedFd fd) {
  SetFd(field, context->fds().Keep(std::move(fd)));
}
inline void AttachFd(ClientContext* context, FileDescriptor* field, ScopedFd fd) {
  SetFd(field, context->fds().Keep(std::move(fd)));
}

// OK if `message` names no descriptor in any FileDescriptor field;
// otherwise FAILED_PRECONDITION, saying it cannot go to `destination`. For
// code that sends messages where descriptors cannot follow: the gRPC bridge
// checks every message bound for a gRPC peer (descriptors cannot cross
// machines).
absl::Status CheckNoFds(const google::protobuf::MessageLite& message,
                        absl::string_view destination);

// The descriptor number `field` names in this process, or -1.
inline int PeekFd(const FileDescriptor& field) {
  return static_cast<int>(field.handle()) - 1;
}

// Moves the descriptor that `field` of the call's last received message names
// out of the call's context. NOT_FOUND when the field names none or it was
// taken already (runtime/call_fds.h).
inline absl::StatusOr<ScopedFd> TakeFd(ClientContext* context, const FileDescriptor& field) {
  return context->fds().Take(field.handle());
}
inline absl::StatusOr<ScopedFd> TakeFd(ServerContext* context, const FileDescriptor& field) {
  return context->fds().Take(field.handle());
}

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_FILE_DESCRIPTOR_H_
