// SharedBufferService (tests/e2e/shared_buffer_service.proto): the server
// side of the shared-buffer tests and benchmark, run by test_server and by
// bench/shared_buffer_bench's worker.

#ifndef IPCRPC_TESTS_E2E_SHARED_BUFFER_SERVICE_IMPL_H_
#define IPCRPC_TESTS_E2E_SHARED_BUFFER_SERVICE_IMPL_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"
#include "runtime/shared_buffer.h"
#include "tests/e2e/shared_buffer_service.ipcrpc.pb.h"

namespace ipcrpc::test {

class SharedBufferServiceImpl final : public SharedBufferService::Service {
 public:
  absl::Status Exchange(ServerContext* ctx, const BufferRequest* req, BufferReply* reply) override;
  absl::Status Produce(ServerContext* ctx, const BufferRequest* req,
                       ServerWriter<BufferReply>* writer) override;
  absl::Status Consume(ServerContext* ctx, ServerReader<BufferRequest>* reader,
                       BufferReply* reply) override;
  absl::Status Mirror(ServerContext* ctx,
                      ServerReaderWriter<BufferReply, BufferRequest>* stream) override;
  absl::Status Hoard(ServerContext* ctx, const BufferRequest* req, BufferReply* reply) override;
  absl::Status ReleaseHoard(ServerContext* ctx, const BufferRequest* req,
                            BufferReply* reply) override;
  absl::Status Scribble(ServerContext* ctx, const BufferRequest* req,
                        ServerWriter<BufferReply>* writer) override;
  absl::Status CopyExchange(ServerContext* ctx, const BufferRequest* req,
                            BufferReply* reply) override;

 private:
  internal::Mutex mu_;
  std::vector<SharedBufferView> hoard_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ipcrpc::test

#endif  // IPCRPC_TESTS_E2E_SHARED_BUFFER_SERVICE_IMPL_H_
