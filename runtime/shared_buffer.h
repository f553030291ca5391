// ipcrpc: zero-copy shared buffers in calls.
//
// Declare a field of type ipcrpc.SharedBuffer (proto/ipcrpc/shared_buffer.proto)
// in any request or response message — singular, repeated, nested, in unary
// calls and streams — and its bytes travel in shared memory: the sender
// allocates a buffer from its connection's pool and fills it in place; the
// receiver reads the very same pages through a read-only span. The payload is
// never copied, serialized or parsed, so a call costs the same for 64 KiB and
// 1 GiB. Works on every transport (unix, fifo, shm, shm+sem, msgq); the peer
// must be an ipcrpc C++ peer that announced the feature (not the Python
// package, not the gRPC bridge: FAILED_PRECONDITION).
//
// Sender:
//   absl::StatusOr<ipcrpc::SharedBufferWriter> w =
//       ipcrpc::AllocateSharedBuffer(*channel, size);      // client: the channel's connection
//   // or AllocateSharedBuffer(ctx, size) in a server handler
//   if (!w.ok()) return w.status();                        // RESOURCE_EXHAUSTED at the pool cap
//   Fill(w->data());                                       // absl::Span<uint8_t>
//   ipcrpc::SetSharedBuffer(request.mutable_frame(), *w);  // borrows: keep *w until the send returns
//   // (or AttachSharedBuffer(ctx, field, std::move(*w)): the call keeps it)
//
// Receiver:
//   absl::StatusOr<ipcrpc::SharedBufferView> v =
//       ipcrpc::TakeSharedBuffer(ctx, request.frame());    // after the message was read
//   Use(v->data());                                        // absl::Span<const uint8_t>, no copy
//   // the sender may reuse the space once `v` is destroyed (and it dropped its writer)
//
// What a receiver may assume (docs/SECURITY.md): the span stays mapped and
// readable while the view lives, whatever the sender does — the memory is
// sealed against shrinking and mapped read-only here. What it may NOT
// assume: that the bytes stay the same. The sender can keep writing into a
// buffer it sent. Validate a copy (Snapshot()) if the peer is not trusted.
//
// Lifetime: a buffer's space is reused when the sender has destroyed every
// writer for it and the receiver every view (or never took it). Writers and
// views may outlive their call and their connection; when the connection
// ends the pool is forgotten on both sides and each mapping goes with the
// last writer or view that uses it.
//
// Thread-safety: the functions are thread-safe; a writer or view is used by
// one thread at a time (the bytes are plain memory).

#ifndef IPCRPC_RUNTIME_SHARED_BUFFER_H_
#define IPCRPC_RUNTIME_SHARED_BUFFER_H_

#include "absl/status/statusor.h"
#include "proto/ipcrpc/shared_buffer.pb.h"
#include "runtime/client_context.h"
#include "runtime/server_context.h"
#include "runtime/shared_buffer_view.h"

namespace ipcrpc {

// Makes `field` name `writer`'s buffer. Borrows: `writer` must stay alive
// until the call that sends the message (Write, the stub call, …) returns;
// after that the peer's reference keeps the space. An invalid writer clears
// the field.
inline void SetSharedBuffer(SharedBuffer* field, const SharedBufferWriter& writer) {
  field->set_handle(writer.handle());
}

// Makes `field` name the buffer and gives the writer to the call, which
// keeps it until the context is destroyed: what a unary handler needs for
// its response, sent after it returns. In long streams prefer SetSharedBuffer
// with a writer kept until Write returns, as attached writers stay until the
// call ends.
inline void AttachSharedBuffer(ServerContext* context, SharedBuffer* field,
                               SharedBufferWriter writer) {
  SetSharedBuffer(field, writer);
  context->buffers().Keep(std::move(writer));
}
inline void AttachSharedBuffer(ClientContext* context, SharedBuffer* field,
                               SharedBufferWriter writer) {
  SetSharedBuffer(field, writer);
  context->buffers().Keep(std::move(writer));
}

// Moves the buffer that `field` of the call's last received message names
// out of the call's context. NOT_FOUND when the field names none or it was
// taken or released already (runtime/call_buffers.h).
inline absl::StatusOr<SharedBufferView> TakeSharedBuffer(ClientContext* context,
                                                         const SharedBuffer& field) {
  return context->buffers().Take(field.handle());
}
inline absl::StatusOr<SharedBufferView> TakeSharedBuffer(ServerContext* context,
                                                         const SharedBuffer& field) {
  return context->buffers().Take(field.handle());
}

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SHARED_BUFFER_H_
