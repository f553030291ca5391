#include "tests/e2e/shared_buffer_service_impl.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/e2e/shared_buffer_pattern.h"

namespace ipcrpc::test {
namespace {

// Every buffer the request names, in field order.
std::vector<const SharedBuffer*> BuffersOf(const BufferRequest& req) {
  std::vector<const SharedBuffer*> out;
  if (req.has_buffer()) out.push_back(&req.buffer());
  for (const SharedBuffer& b : req.buffers()) out.push_back(&b);
  if (req.has_nested() && req.nested().has_buffer()) out.push_back(&req.nested().buffer());
  return out;
}

// Takes and reads every buffer of `req` into the checksum (with a stride:
// every stride-th byte and the last).
absl::Status ReadBuffers(ServerContext* ctx, const BufferRequest& req, BufferReply* reply) {
  uint64_t hash = reply->checksum() == 0 ? 14695981039346656037ull : reply->checksum();
  uint64_t bytes = reply->bytes_read();
  for (const SharedBuffer* field : BuffersOf(req)) {
    absl::StatusOr<SharedBufferView> view = TakeSharedBuffer(ctx, *field);
    if (!view.ok()) return view.status();
    if (req.stride() <= 1) {
      hash = Fnv1a(view->data(), hash);
    } else {
      for (uint64_t i = 0; i < view->size(); i += req.stride()) {
        hash = Fnv1a(view->data().subspan(i, 1), hash);
      }
      if (view->size() > 0) hash = Fnv1a(view->data().subspan(view->size() - 1), hash);
    }
    bytes += view->size();
  }  // released here
  reply->set_checksum(hash);
  reply->set_bytes_read(bytes);
  return absl::OkStatus();
}

}  // namespace

absl::Status SharedBufferServiceImpl::Exchange(ServerContext* ctx, const BufferRequest* req,
                                               BufferReply* reply) {
  if (!req->no_read()) {
    absl::Status read = ReadBuffers(ctx, *req, reply);
    if (!read.ok()) return read;
  }
  if (req->size() > 0) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(ctx, req->size());
    if (!w.ok()) return w.status();
    if (!req->no_read()) FillPatternSampled(w->data(), req->seed(), req->stride());
    AttachSharedBuffer(ctx, reply->mutable_buffer(), std::move(*w));
  }
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::Produce(ServerContext* ctx, const BufferRequest* req,
                                              ServerWriter<BufferReply>* writer) {
  for (uint32_t i = 0; i < req->count(); ++i) {
    absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(ctx, req->size());
    if (!w.ok()) return w.status();
    FillPattern(w->data(), req->seed() + i);
    BufferReply reply;
    reply.set_index(i);
    SetSharedBuffer(reply.mutable_buffer(), *w);
    if (!writer->Write(reply)) return absl::OkStatus();
  }  // each writer dropped after its Write: the client's reference keeps it
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::Consume(ServerContext* ctx,
                                              ServerReader<BufferRequest>* reader,
                                              BufferReply* reply) {
  BufferRequest req;
  while (reader->Read(&req)) {
    absl::Status read = ReadBuffers(ctx, req, reply);
    if (!read.ok()) return read;
  }
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::Mirror(
    ServerContext* ctx, ServerReaderWriter<BufferReply, BufferRequest>* stream) {
  BufferRequest req;
  uint32_t index = 0;
  while (stream->Read(&req)) {
    absl::StatusOr<SharedBufferView> in = TakeSharedBuffer(ctx, req.buffer());
    if (!in.ok()) return in.status();
    absl::StatusOr<SharedBufferWriter> out = AllocateSharedBuffer(ctx, in->size());
    if (!out.ok()) return out.status();
    std::copy(in->data().begin(), in->data().end(), out->data().begin());
    BufferReply reply;
    reply.set_index(index++);
    SetSharedBuffer(reply.mutable_buffer(), *out);
    if (!stream->Write(reply)) break;
  }
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::Hoard(ServerContext* ctx, const BufferRequest* req,
                                            BufferReply* reply) {
  std::vector<SharedBufferView> taken;
  for (const SharedBuffer* field : BuffersOf(*req)) {
    absl::StatusOr<SharedBufferView> view = TakeSharedBuffer(ctx, *field);
    if (!view.ok()) return view.status();
    taken.push_back(std::move(*view));
  }
  internal::MutexLock lock(&mu_);
  for (SharedBufferView& v : taken) hoard_.push_back(std::move(v));
  reply->set_index(static_cast<uint32_t>(hoard_.size()));
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::ReleaseHoard(ServerContext*, const BufferRequest*,
                                                   BufferReply* reply) {
  std::vector<SharedBufferView> dropped;
  {
    internal::MutexLock lock(&mu_);
    dropped.swap(hoard_);
  }
  reply->set_index(static_cast<uint32_t>(dropped.size()));
  return absl::OkStatus();  // `dropped` released here
}

absl::Status SharedBufferServiceImpl::Scribble(ServerContext* ctx, const BufferRequest* req,
                                               ServerWriter<BufferReply>* writer) {
  absl::StatusOr<SharedBufferWriter> w = AllocateSharedBuffer(ctx, req->size());
  if (!w.ok()) return w.status();
  FillPattern(w->data(), req->seed());
  BufferReply reply;
  SetSharedBuffer(reply.mutable_buffer(), *w);
  if (!writer->Write(reply)) return absl::OkStatus();
  // Keep writing into the buffer the client is reading, until it cancels.
  uint8_t value = 0;
  while (!ctx->IsCancelled()) {
    for (uint8_t& b : w->data()) b = value;
    ++value;
  }
  return absl::OkStatus();
}

absl::Status SharedBufferServiceImpl::CopyExchange(ServerContext*, const BufferRequest* req,
                                                   BufferReply* reply) {
  if (req->size() > 0) {
    reply->mutable_data()->resize(req->size());
    if (!req->no_read()) {
      FillPattern(absl::MakeSpan(reinterpret_cast<uint8_t*>(reply->mutable_data()->data()),
                                 req->size()),
                  req->seed());
    }
  } else {
    reply->set_data(req->data());
  }
  return absl::OkStatus();
}

}  // namespace ipcrpc::test
